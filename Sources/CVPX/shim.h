#ifndef PARLEY_CVPX_SHIM_H
#define PARLEY_CVPX_SHIM_H
#include <vpx/vpx_encoder.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>
// vpx_codec_enc_init / vpx_codec_dec_init are function-like macros and
// vpx_codec_control is a variadic macro: none imports into Swift.
static inline vpx_codec_err_t shim_vpx_codec_enc_init(vpx_codec_ctx_t *ctx, vpx_codec_iface_t *iface,
                                                      const vpx_codec_enc_cfg_t *cfg, vpx_codec_flags_t flags) {
    return vpx_codec_enc_init(ctx, iface, cfg, flags);
}
static inline vpx_codec_err_t shim_vpx_codec_dec_init(vpx_codec_ctx_t *ctx, vpx_codec_iface_t *iface,
                                                      const vpx_codec_dec_cfg_t *cfg, vpx_codec_flags_t flags) {
    return vpx_codec_dec_init(ctx, iface, cfg, flags);
}
static inline vpx_codec_err_t shim_vp8_set_cpuused(vpx_codec_ctx_t *ctx, int v) {
    return vpx_codec_control(ctx, VP8E_SET_CPUUSED, v);
}
// Codecs target: typed wrappers for the VP8 controls it uses (vpx_codec_control
// expands to per-id static functions that Swift cannot name through the macro).
static inline vpx_codec_err_t shim_vp8_set_static_threshold(vpx_codec_ctx_t *ctx, unsigned int v) {
    return vpx_codec_control(ctx, VP8E_SET_STATIC_THRESHOLD, v);
}
static inline vpx_codec_err_t shim_vp8_set_token_partitions(vpx_codec_ctx_t *ctx, int log2Count) {
    return vpx_codec_control(ctx, VP8E_SET_TOKEN_PARTITIONS, log2Count);
}
static inline vpx_codec_err_t shim_vp8_set_screen_content_mode(vpx_codec_ctx_t *ctx, unsigned int mode) {
    return vpx_codec_control(ctx, VP8E_SET_SCREEN_CONTENT_MODE, mode);
}
static inline vpx_codec_err_t shim_vp8_set_temporal_layer_id(vpx_codec_ctx_t *ctx, int layer) {
    return vpx_codec_control(ctx, VP8E_SET_TEMPORAL_LAYER_ID, layer);
}
static inline vpx_codec_err_t shim_vp8_set_noise_sensitivity(vpx_codec_ctx_t *ctx, unsigned int v) {
    return vpx_codec_control(ctx, VP8E_SET_NOISE_SENSITIVITY, v);
}
static inline vpx_codec_err_t shim_vp8_set_max_intra_bitrate_pct(vpx_codec_ctx_t *ctx, unsigned int v) {
    return vpx_codec_control(ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, v);
}
static inline vpx_codec_err_t shim_vp8_get_last_quantizer_64(vpx_codec_ctx_t *ctx, int *q) {
    return vpx_codec_control(ctx, VP8E_GET_LAST_QUANTIZER_64, q);
}
static inline vpx_codec_err_t shim_vp8d_get_frame_corrupted(vpx_codec_ctx_t *ctx, int *corrupted) {
    return vpx_codec_control(ctx, VP8D_GET_FRAME_CORRUPTED, corrupted);
}
#endif
