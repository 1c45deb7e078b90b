// MXFP4 (OCP Microscaling v1.0): blocks of 32 values share one E8M0 scale; each value is an E2M1 code.
// The exact rules are written out in docs/formats.md; the reference kernels below are their executable form.
#pragma once
#include <cstdint>
#include <string_view>

#include "cpu_isa.h"
#include "float_types.h"

namespace mxkernels::core {

constexpr int64_t kMxfp4BlockSize = 32;
constexpr int64_t kMxfp4BlockBytes = kMxfp4BlockSize / 2;  // two E2M1 codes per byte
constexpr uint8_t kE8m0Nan = 0xFF;

// How the shared scale is derived from the block's largest magnitude (amax); named as in torchao's
// ScaleCalculationMode.
enum class ScaleMode : uint8_t { floor = 0, ceil = 1, even = 2, rceil = 3 };

const char* scale_mode_name(ScaleMode mode);
bool parse_scale_mode(std::string_view name, ScaleMode* out);

// Quantizes n_blocks consecutive blocks of 32 values starting at x (contiguous, of type x_type).
// Writes 16 bytes of codes per block to q (element 2i in the low nibble of byte i) and one E8M0 byte per
// block to scales.
using QuantizeMxfp4Fn = void (*)(const void* x, FloatType x_type, int64_t n_blocks, ScaleMode mode,
                                 uint8_t* q, uint8_t* scales);
// The inverse: n_blocks blocks of codes and scales to 32 * n_blocks values of out_type.
using DequantizeMxfp4Fn = void (*)(const uint8_t* q, const uint8_t* scales, int64_t n_blocks,
                                   FloatType out_type, void* out);

struct Mxfp4Kernels {
  QuantizeMxfp4Fn quantize;
  DequantizeMxfp4Fn dequantize;
};

// The kernels compiled for one level; only call those of a supported level.
const Mxfp4Kernels& mxfp4_kernels(CpuIsa isa);
// The kernels of selected_cpu_isa().
const Mxfp4Kernels& mxfp4_kernels();

// Plain scalar code that spells the rules out; every ISA level is tested bit for bit against it.
namespace reference {
void quantize_mxfp4(const void* x, FloatType x_type, int64_t n_blocks, ScaleMode mode, uint8_t* q,
                    uint8_t* scales);
void dequantize_mxfp4(const uint8_t* q, const uint8_t* scales, int64_t n_blocks, FloatType out_type,
                      void* out);
// The value of one E2M1 code (bit 3 sign, bits 2..1 exponent, bit 0 mantissa).
float e2m1_value(uint8_t code);
// The value 2^(byte - 127) of an E8M0 scale; NaN for 0xFF.
float e8m0_value(uint8_t byte);
}  // namespace reference

}  // namespace mxkernels::core
