#ifndef PARLEY_BENCH_SRTP_SHIM_H
#define PARLEY_BENCH_SRTP_SHIM_H
// libsrtp2 for the benchmarks (a copy of the root package's CSRTP shim under
// another module name: the root's CSRTP is not exported by ParleyMedia).
#include <srtp2/srtp.h>
#endif
