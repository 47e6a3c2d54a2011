#ifndef PARLEY_COPUS_SHIM_H
#define PARLEY_COPUS_SHIM_H
#include <opus.h>
// opus_encoder_ctl is variadic and does not import into Swift.
static inline int shim_opus_set_bitrate(OpusEncoder *st, opus_int32 bps) { return opus_encoder_ctl(st, OPUS_SET_BITRATE(bps)); }
static inline int shim_opus_get_bitrate(OpusEncoder *st, opus_int32 *bps) { return opus_encoder_ctl(st, OPUS_GET_BITRATE(bps)); }
static inline int shim_opus_set_complexity(OpusEncoder *st, opus_int32 c) { return opus_encoder_ctl(st, OPUS_SET_COMPLEXITY(c)); }
static inline int shim_opus_set_inband_fec(OpusEncoder *st, opus_int32 on) { return opus_encoder_ctl(st, OPUS_SET_INBAND_FEC(on)); }
static inline int shim_opus_set_dtx(OpusEncoder *st, opus_int32 on) { return opus_encoder_ctl(st, OPUS_SET_DTX(on)); }
static inline int shim_opus_set_packet_loss_perc(OpusEncoder *st, opus_int32 p) { return opus_encoder_ctl(st, OPUS_SET_PACKET_LOSS_PERC(p)); }
// Codecs target: further ctl wrappers (opus_*_ctl is variadic).
static inline int shim_opus_set_application(OpusEncoder *st, opus_int32 app) { return opus_encoder_ctl(st, OPUS_SET_APPLICATION(app)); }
static inline int shim_opus_set_vbr(OpusEncoder *st, opus_int32 on) { return opus_encoder_ctl(st, OPUS_SET_VBR(on)); }
static inline int shim_opus_set_vbr_constraint(OpusEncoder *st, opus_int32 on) { return opus_encoder_ctl(st, OPUS_SET_VBR_CONSTRAINT(on)); }
static inline int shim_opus_set_signal(OpusEncoder *st, opus_int32 sig) { return opus_encoder_ctl(st, OPUS_SET_SIGNAL(sig)); }
static inline int shim_opus_get_lookahead(OpusEncoder *st, opus_int32 *samples) { return opus_encoder_ctl(st, OPUS_GET_LOOKAHEAD(samples)); }
static inline int shim_opus_get_in_dtx(OpusEncoder *st, opus_int32 *on) { return opus_encoder_ctl(st, OPUS_GET_IN_DTX(on)); }
static inline int shim_opus_encoder_reset(OpusEncoder *st) { return opus_encoder_ctl(st, OPUS_RESET_STATE); }
static inline int shim_opus_decoder_reset(OpusDecoder *st) { return opus_decoder_ctl(st, OPUS_RESET_STATE); }
static inline int shim_opus_decoder_get_last_packet_duration(OpusDecoder *st, opus_int32 *samples) { return opus_decoder_ctl(st, OPUS_GET_LAST_PACKET_DURATION(samples)); }
#endif
