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
#endif
