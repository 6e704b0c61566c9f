/* When a file sink syncs what it wrote (CELL_OS_JSONL_FSYNC): vocabulary shared
 * by the configuration and the sinks; enums only, includes nothing of ours. */
#ifndef CELLOS_FSYNC_H
#define CELLOS_FSYNC_H

enum fsync_mode { FSYNC_CLOSE = 0, FSYNC_EVENT, FSYNC_NONE };

#endif
