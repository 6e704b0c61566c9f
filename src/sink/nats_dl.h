/* libnats (the NATS C client), loaded when the first NATS connection needs it.
 *
 * libnats pulls libssl, libcrypto and libprotobuf-c into every process that links
 * it; a supervisor without CELLOS_NATS_URL must not pay for that at start-up
 * (bench/README.md has the measurement). The entry points are looked up once,
 * with the declarations of <nats/nats.h>, so a call through the table is checked
 * by the compiler like a direct one. Nothing here links against libnats. */
#ifndef CELLOS_NATS_DL_H
#define CELLOS_NATS_DL_H

#include <nats/nats.h>

#include "util/err.h"

/* Every libnats function the project calls. */
#define NATS_DL_FUNCTIONS(X)                                                                                        \
	X(nats_CloseAndWait)                                                                                        \
	X(natsStatus_GetText)                                                                                       \
	X(nats_GetLastError)                                                                                        \
	X(natsOptions_Create)                                                                                       \
	X(natsOptions_Destroy)                                                                                      \
	X(natsOptions_SetServers)                                                                                   \
	X(natsOptions_SetTimeout)                                                                                   \
	X(natsOptions_SetName)                                                                                      \
	X(natsOptions_SetSecure)                                                                                    \
	X(natsOptions_LoadCATrustedCertificates)                                                                    \
	X(natsOptions_LoadCertificatesChain)                                                                        \
	X(natsOptions_SetUserCredentialsFromFiles)                                                                  \
	X(natsOptions_SetMaxReconnect)                                                                              \
	X(natsOptions_SetReconnectWait)                                                                             \
	X(natsOptions_SetRetryOnFailedConnect)                                                                      \
	X(natsOptions_SetNoEcho)                                                                                    \
	X(natsOptions_SetSendAsap)                                                                                  \
	X(natsConnection_Connect)                                                                                   \
	X(natsConnection_Destroy)                                                                                   \
	X(natsConnection_Close)                                                                                     \
	X(natsConnection_Status)                                                                                    \
	X(natsConnection_RequestMsg)                                                                                \
	X(natsConnection_Request)                                                                                   \
	X(natsConnection_FlushTimeout)                                                                              \
	X(natsConnection_SubscribeSync)                                                                             \
	X(natsSubscription_NextMsg)                                                                                 \
	X(natsSubscription_Destroy)                                                                                 \
	X(natsMsg_Create)                                                                                           \
	X(natsMsg_Destroy)                                                                                          \
	X(natsMsg_GetData)                                                                                          \
	X(natsMsg_GetDataLength)                                                                                    \
	X(natsMsg_GetSubject)                                                                                       \
	X(natsMsg_GetReply)                                                                                         \
	X(natsMsgHeader_Set)                                                                                        \
	X(natsMsgHeader_Get)                                                                                        \
	X(natsConnection_PublishMsg)                                                                                \
	X(natsInbox_Create)                                                                                         \
	X(natsInbox_Destroy)                                                                                         \
	X(natsConnection_Subscribe)                                                                                 \
	X(natsSubscription_SetPendingLimits)

#define NATS_DL_MEMBER(name) __typeof__(name) *name;
struct nats_api {
	NATS_DL_FUNCTIONS(NATS_DL_MEMBER)
};
#undef NATS_DL_MEMBER

/* Load libnats (once per process) and return its entry points, or NULL with *e
 * set. */
const struct nats_api *nats_api_load(struct err *e);

#endif
