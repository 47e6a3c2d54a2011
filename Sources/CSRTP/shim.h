#ifndef PARLEY_CSRTP_SHIM_H
#define PARLEY_CSRTP_SHIM_H
#include <srtp2/srtp.h>
// srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 is a macro alias.
static inline void shim_srtp_policy_aes_cm_128_hmac_sha1_80(srtp_crypto_policy_t *p) { srtp_crypto_policy_set_rtp_default(p); }
#endif
