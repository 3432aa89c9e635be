/**
 * Copyright (c) 2017-present, Facebook, Inc.
 * All rights reserved.
 *
 * This source code is licensed under the BSD-style license found in the
 * LICENSE file in the root directory of this source tree.
 */
// Hand-written stand-in for the CMake-generated gloo/config.h (from gloo/config.h.in at
// pytorch/gloo 70dc360272dfc57e3617184c78ff9b06f8cd4757). Only gloo/math.h reads it (GLOO_USE_AVX, inline
// helpers only); no macro here changes the layout of a class that ProcessGroupGloo.hpp touches.
#pragma once

#define GLOO_VERSION_MAJOR 0
#define GLOO_VERSION_MINOR 5
#define GLOO_VERSION_PATCH 0
#define GLOO_VERSION (GLOO_VERSION_MAJOR * 10000 + GLOO_VERSION_MINOR * 100 + GLOO_VERSION_PATCH)

// torch's CUDA wheels build gloo with USE_CUDA/USE_NCCL on, but no header we include depends on them,
// and keeping them 0 avoids pulling in gloo/cuda.h (which needs the CUDA toolkit).
#define GLOO_USE_CUDA 0
#define GLOO_USE_NCCL 0
#define GLOO_USE_ROCM 0
#define GLOO_USE_RCCL 0
#define GLOO_USE_REDIS 0
#define GLOO_USE_IBVERBS 0
#define GLOO_USE_MPI 0
#define GLOO_USE_AVX 0
#define GLOO_USE_LIBUV 0

#define GLOO_HAVE_TRANSPORT_TCP 1
#define GLOO_HAVE_TRANSPORT_TCP_TLS 0
#define GLOO_HAVE_TRANSPORT_IBVERBS 0
#define GLOO_HAVE_TRANSPORT_UV 0

#define GLOO_USE_TORCH_DTYPES 0
