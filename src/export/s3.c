/* S3 export through a presigned PUT URL per named target (SPEC §10):
 * CELLOS_EXPORT_S3_PRESIGNED_URL__<TARGET>, same URL rule as HTTP. The
 * signature is in the URL's query: no bearer token is sent (it is meant for the
 * HTTP endpoint, and S3 would reject a second authorisation anyway). */
#include <stdio.h>

#include "export/export.h"

static int s3_put(const struct export_item *it, struct export_receipt *rc, struct err *e)
{
	cleanup_free char *url = export_url_for(it->url, it->cell_id, it->name);
	if (!url)
		return err_set(e, "out of memory");
	char shown[sizeof rc->destination];
	export_url_shown(url, shown, sizeof shown);
	/* The receipt names the object; without a bucket in the document, the URL
	 * (as shown) is the best name there is. */
	if (it->target && it->target->bucket)
		export_s3_destination(it->target->bucket, it->target->key_prefix, it->cell_id, it->name,
				      rc->destination, sizeof rc->destination);
	else
		snprintf(rc->destination, sizeof rc->destination, "%s", shown);
	return export_http_put(it, url, NULL, shown, rc, e);
}

const struct export_sink export_s3 = {.kind = "S3", .put = s3_put};
