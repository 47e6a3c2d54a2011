#ifndef PARLEY_COPENSSL_SHIM_H
#define PARLEY_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/bio.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <string.h>

// Function-like macros and variadic functions do not import into Swift:
// each one Parley needs gets a static inline wrapper here.
static inline EVP_PKEY *shim_EVP_EC_gen(const char *curve) { return EVP_EC_gen(curve); }
static inline long shim_BIO_ctrl_pending(BIO *b) { return BIO_ctrl_pending(b); }
static inline long shim_DTLS_get_timeout_ms(SSL *s) {
    struct timeval tv;
    if (DTLSv1_get_timeout(s, &tv) != 1) return -1;
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}
static inline long shim_DTLS_handle_timeout(SSL *s) { return DTLSv1_handle_timeout(s); }
static const uint64_t shim_SSL_OP_NO_QUERY_MTU = SSL_OP_NO_QUERY_MTU;
static inline long shim_DTLS_set_link_mtu(SSL *s, long mtu) { return DTLS_set_link_mtu(s, mtu); }
// STUN MESSAGE-INTEGRITY: the low-level SHA contexts are plain structs, so a
// precomputed HMAC inner/outer state can be copied per message with no
// allocation (EVP_MD_CTX_copy_ex allocates under OpenSSL 3 providers).
#include <openssl/sha.h>
static inline int shim_SHA1_Init(SHA_CTX *c) { return SHA1_Init(c); }
static inline int shim_SHA1_Update(SHA_CTX *c, const void *d, size_t n) { return SHA1_Update(c, d, n); }
static inline int shim_SHA1_Final(unsigned char *md, SHA_CTX *c) { return SHA1_Final(md, c); }
static inline int shim_SHA256_Init(SHA256_CTX *c) { return SHA256_Init(c); }
static inline int shim_SHA256_Update(SHA256_CTX *c, const void *d, size_t n) { return SHA256_Update(c, d, n); }
static inline int shim_SHA256_Final(unsigned char *md, SHA256_CTX *c) { return SHA256_Final(md, c); }
// DTLS: WebRTC never resumes sessions, so no NewSessionTicket in the final flight.
static const uint64_t shim_SSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
#endif
