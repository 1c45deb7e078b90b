// The W4A16 kernel for M > 16 with bf16 or fp16 activations on Hopper: warpgroup MMAs (wgmma, sm_90a) with both
// operands in shared memory, fed by warpgroups that decode the codes into tiles of the activations' type (w4a16_wgmma
// below).
#pragma once
#include <cuda.h>  // CUtensorMap (the driver's encoder is looked up at run time: no link to libcuda)
#include <cudaTypedefs.h>

#include <cstdint>

#include "cuda/w4a16_kernels.cuh"

namespace mxkernels::core::cuda {
namespace {

// Whether this build has the sm_90a kernel (CMake defines it when the architecture list names 90a).
#if defined(MXKERNELS_CUDA_SM90A)
constexpr bool kHaveWgmma = true;
#else
constexpr bool kHaveWgmma = false;
#endif

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Shared memory written by cp.async (the generic proxy) before the tensor cores read it (the async proxy).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// ---- the activations' bulk tensor copies (TMA), each completing on its ring slot's mbarrier ----
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count) : "memory");
}
// Makes initialized barriers visible to the copy engine (a block barrier follows before any use).
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
}
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nmbarrier_wait_again:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra mbarrier_wait_again;\n}\n" ::"r"(shared_address(bar)),
      "r"(parity)
      : "memory");
}
// Box (x, y) of a 2-D tensor map into shared memory; its bytes complete a transaction on `bar`.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, uint64_t* bar, int x, int y) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          shared_address(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(shared_address(bar))
      : "memory");
}

// Keeps registers that an in-flight wgmma reads or writes where they are until this point.
template <int N>
__device__ __forceinline__ void keep_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Shared-memory matrix descriptor of a K-major tile with 128-byte swizzled rows (8-row groups 1024 bytes apart); the
// start address advances by 32 bytes (2 in the descriptor) per 16 K values.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(const void* smem) {
  const uint32_t addr = shared_address(smem);
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

// The m64nNk16 MMAs (float32 += T x T, T bf16 or fp16) written out for the N the kernel takes: N / 2 accumulators
// per thread, the first 44 of which both shapes share.
#define MXK_WGMMA_ACC44                                                                   \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                 \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "       \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43"
#define MXK_WGMMA_M64N128K16(type)                                                        \
  "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                             \
  "wgmma.mma_async.sync.aligned.m64n128k16.f32." type "." type " {" MXK_WGMMA_ACC44       \
  ", %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "     \
  "%60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
#define MXK_WGMMA_M64N88K16(type)                                                         \
  "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                             \
  "wgmma.mma_async.sync.aligned.m64n88k16.f32." type "." type " {" MXK_WGMMA_ACC44        \
  "}, %44, %45, p, 1, 1, 0, 0;\n}\n"
#define MXK_WGMMA_D44(d)                                                                                     \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),              \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),     \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),   \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),   \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),   \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43])
#define MXK_WGMMA_D64(d)                                                                                     \
  MXK_WGMMA_D44(d), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), \
      "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]),   \
      "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
// D (64 x N, float32) += A (64 x 16) * B (16 x N), both K-major swizzled tiles of T in shared memory.
template <typename T, int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b) {
  constexpr bool kHalf = std::is_same_v<T, __half>;
  static_assert(N == 88 || N == 128, "the MMA shapes written out above");
  if constexpr (N == 128) {
    if constexpr (kHalf) {
      asm volatile(MXK_WGMMA_M64N128K16("f16") : MXK_WGMMA_D64(d) : "l"(desc_a), "l"(desc_b) : "memory");
    } else {
      asm volatile(MXK_WGMMA_M64N128K16("bf16") : MXK_WGMMA_D64(d) : "l"(desc_a), "l"(desc_b) : "memory");
    }
  } else {
    if constexpr (kHalf) {
      asm volatile(MXK_WGMMA_M64N88K16("f16") : MXK_WGMMA_D44(d) : "l"(desc_a), "l"(desc_b) : "memory");
    } else {
      asm volatile(MXK_WGMMA_M64N88K16("bf16") : MXK_WGMMA_D44(d) : "l"(desc_a), "l"(desc_b) : "memory");
    }
  }
}
#undef MXK_WGMMA_M64N128K16
#undef MXK_WGMMA_D64
#undef MXK_WGMMA_M64N88K16
#undef MXK_WGMMA_D44
#undef MXK_WGMMA_ACC44

// ---- the kernel --------------------------------------------------------------------------------------------------
// PWG warpgroups (the producers) copy the codes of each K stage (64 or 128 values; cp.async) and have its activations
// copied (bulk tensor copies, TMA), decode the codes into 128-byte swizzled tiles of T (the activations' type, bf16 or
// fp16) in shared memory, and warpgroup 0 (the consumer) runs the stage's m64nNk16 MMAs on the tiles while the
// producers decode the next (WgmmaShape: the weights as the MMAs' A or B operand). A decoded
// stage is handed over through a named barrier (full), the activations through an mbarrier per slot, and a decoded
// slot back through an mbarrier per slot (empty: the MMAs that read it are done), and setmaxnreg gives the consumer's
// accumulators the registers the producers do not need. (Decoding into the MMA's register operand instead, an earlier
// kernel, made each warpgroup wait for its MMAs before decoding the next stage: ptxas serializes register-A wgmma
// whose registers are rewritten while they run.) A block takes BN columns and BT activation rows over a share of K:
// K may be split over a cluster of blocks whose partial sums meet in rank order through distributed
// shared memory (the same bits on every run).
//
// The decoded tile keeps the activations' natural K order (decode_e2m1x8_in_order).
//
// The decode applies each block's scale where that is exact (WgmmaScaleWindow: scales in [77, 138] in bf16, [104, 140]
// in fp16), or a block whose codes are all zeros. Any other block (scale 0, 255, 139...) makes the whole block of the
// grid compute its share again on the exact path: per 32-value block, float32 sums of exact products times the scale,
// as on the CPU. Real weights do not need it (their scales lie near 119..127); it is correct, not fast.
template <int MB_, int PWG_, int X_SLOTS_, int CODE_SLOTS_, int WEIGHTS_B_N_ = 0, int STAGE_K_ = 64>
struct WgmmaShape {
  // PWG producer warpgroups. The decoded weights are the MMAs' A operand (64 columns per MMA, MB_ of them: BN = 64 MB_
  // columns, the 128 activation rows as the MMAs' N), or, where WEIGHTS_B_N_ is set, their B operand (BN =
  // WEIGHTS_B_N_ columns as the MMAs' N, BT = 64 MB_ activation rows as MB_ MMAs' 64-row A tiles). With
  // the weights as B each block reads more of the activations for the columns it decodes (a stage's shared-memory
  // traffic per column and K value is 7 + 512 / BN bytes, against 9 + 256 / BN), but a narrower tile splits K over
  // fewer blocks.
  static constexpr bool WEIGHTS_AS_B = WEIGHTS_B_N_ > 0;
  static constexpr int MB = MB_, BN = WEIGHTS_AS_B ? WEIGHTS_B_N_ : 64 * MB_, BT = WEIGHTS_AS_B ? 64 * MB_ : 128;
  static constexpr int MMA_N = WEIGHTS_AS_B ? BN : BT, ACC = MMA_N / 2;  // accumulators per thread and MMA block
  static constexpr int PRODUCERS = 128 * PWG_, THREADS = 128 + PRODUCERS;
  // K values per stage (64 or 128): a stage's activation and decoded tiles are one or two 128-byte swizzled
  // sub-tiles of 64 values, SUBTILES of them.
  static constexpr int STAGE_K = STAGE_K_, SUBTILES = STAGE_K / 64, STAGE_BLOCKS = STAGE_K / 32;
  static_assert(STAGE_K == 64 || STAGE_K == 128, "stages of one or two 64-value sub-tiles");
  // Three rings: activations (X_SLOTS; refilled for stage it + X_SLOTS - 2 once stage it - 2's MMAs are done),
  // decoded weights (3; written for stage it once stage it - 3's MMAs are done) and codes (CODE_SLOTS; refilled for
  // stage it + CODE_SLOTS - 1 once stage it - 1 is decoded: each thread decodes the codes it copies), so that the
  // loads from memory are issued several stages ahead while the decoded tiles take little room.
  static constexpr int X_SLOTS = X_SLOTS_, A_SLOTS = 3, CODE_SLOTS = CODE_SLOTS_;
  static constexpr int X_SUB = BT * 128, A_SUB = BN * 128;  // a sub-tile's bytes (multiples of 1024)
  static constexpr int X_BYTES = X_SUB * SUBTILES, A_BYTES = A_SUB * SUBTILES, CODE_BYTES = BN * STAGE_K / 2;
  // Layout: codes, decoded tiles, activations; the partial sums at the end take only activation slots, which no
  // thread writes after its last stage has landed (so the producers' decode stores and the consumer's partial sums
  // never share an address).
  static constexpr int CODE_RING = 0, A_RING = (CODE_SLOTS * CODE_BYTES + 1023) / 1024 * 1024;
  static constexpr int X_RING = A_RING + A_SLOTS * A_BYTES, RINGS = X_RING + X_SLOTS * X_BYTES;
  // Partial sums, floats per row (rows 16-byte aligned): conflict-free for the D fragments' stores, one float per
  // thread (weights as A: BN + 4) or two (weights as B: 8 mod 32).
  static constexpr int PART_PITCH = WEIGHTS_AS_B ? (BN + 23) / 32 * 32 + 8 : BN + 4;
  static constexpr int PART_BYTES = BT * PART_PITCH * 4;
  static constexpr int PART = RINGS - PART_BYTES;  // byte offset, 16-byte aligned
  static constexpr int X_BARRIERS = RINGS;  // an mbarrier per activation slot
  static constexpr int A_BARRIERS = X_BARRIERS + 8 * X_SLOTS;  // and per decoded slot (its MMAs are done)
  // + 1024: the swizzled tiles need 1024-byte alignment, which the dynamic shared memory does not promise.
  static constexpr int SMEM = RINGS + 8 * (X_SLOTS + A_SLOTS) + 1024;
  // Per producer thread and stage, in rounds of PRODUCERS (the last one partial): decode units, each a 32-value block
  // of codes (16 bytes) that the thread also copies. (The 88-column tiles' 352 blocks a stage as 704 halves over 384
  // threads, two rounds, took an H100 from 15.9 to 16.3 us at M=128 and from 13.25 to 13.65 at M=32,
  // tests/gpu/tune_in_process.py.)
  static constexpr int UNITS = BN * STAGE_BLOCKS;
  static constexpr int DECODE_UNITS = (UNITS + PRODUCERS - 1) / PRODUCERS;
  // Registers per thread after setmaxnreg (multiples of 8). The consumer's increase takes what the producers'
  // decrease frees from the block's allocation at launch (65536 / THREADS each, rounded down to 8), so it must not
  // ask for more (four producer warpgroups would deadlock at 232).
  static constexpr int CONSUMER_REGS = MB * ACC <= 96 ? 168 : 232;
  static constexpr int PRODUCER_REGS = (65536 - CONSUMER_REGS * 128) / PRODUCERS / 8 * 8;
  static constexpr int LAUNCH_REGS = 65536 / THREADS / 8 * 8;
  static_assert((CONSUMER_REGS - LAUNCH_REGS) * 128 <= (LAUNCH_REGS - PRODUCER_REGS) * PRODUCERS,
                "setmaxnreg: the producers free enough registers for the consumer");
  static_assert(X_SLOTS >= 3 && CODE_SLOTS >= 2 && SMEM <= 227 * 1024, "rings");
  // The prologue runs CODE_SLOTS - 1 steps, which must also issue the first X_SLOTS - 2 activation stages (a shape
  // with fewer code slots, <3, 3, 7, 3>, left stages 0..2 unread: NaN and garbage in tune_cuda).
  static_assert(CODE_SLOTS - 1 >= X_SLOTS - 2, "the prologue issues the activations' lead");
  static_assert(PART_BYTES <= X_SLOTS * X_BYTES && PART % 16 == 0, "the partial sums fit the activation ring");
  static_assert(CONSUMER_REGS * 128 + PRODUCER_REGS * PRODUCERS <= 65536, "registers");
};

// Rows of the activations' bulk copies: the tile's, or M rounded up to 8 where M is smaller. MMA rows past the box
// read whatever the slot holds: each output row depends on its own activation row only, and rows past M are never
// stored. (Boxes of 128 rows filled with zeros past M took an H100 from 16.1 to 18.9-21.3 us at M = 32 and 64 with
// the weights as the B operand, tests/gpu/tune_in_process.py.)
template <typename S>
__host__ __device__ constexpr int64_t wgmma_box_rows(int64_t m) {
  return m >= S::BT ? S::BT : (m + 7) / 8 * 8;
}

__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

// The eight E2M1 codes of a word as four pairs in K order, (e0, e1) (e2, e3) (e4, e5) (e6, e7), decoded times
// `factor` (a pair of T) as decode_e2m1x8 does. bf16: a byte permute puts byte j's two codes alone in the two halves
// (the other bytes zero: sign replicated from a byte whose top bit is clear), then the same multiply, mask and rescale
// (19 instructions, where decode_e2m1x8 and four permutes back to K order take 21). fp16, whose sign is 3 bits further
// from the magnitude than a code's (the multiply's copies would overlap): the magnitudes are first shifted to bits
// 1..3 of each byte, for all four bytes at once, and one permute puts byte j's two into the halves' high bytes (fp16
// bits 9..11), a second one the signs (21 instructions); a code c becomes c times 2^-14.
template <typename T>
__device__ __forceinline__ void decode_e2m1x8_in_order(uint32_t q, uint32_t factor, uint32_t pair[4]) {
  using Pair = typename E2m1Decode<T>::Pair;
  const Pair f = *reinterpret_cast<const Pair*>(&factor);
  if constexpr (std::is_same_v<T, __half>) {
    const uint32_t mag_lo = (q << 1) & 0x0E0E0E0Eu, mag_hi = (q >> 3) & 0x0E0E0E0Eu, sign_lo = q << 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t mag, sign;
      const uint32_t mag_select = 8 | j << 4 | 8 << 8 | (4 + j) << 12, sign_select = j << 4 | (4 + j) << 12;
      asm("prmt.b32 %0, %1, %2, %3;" : "=r"(mag) : "r"(mag_lo), "r"(mag_hi), "r"(mag_select));
      asm("prmt.b32 %0, %1, %2, %3;" : "=r"(sign) : "r"(sign_lo), "r"(q), "r"(sign_select));
      const uint32_t raw = mag | (sign & 0x80008000u);
      const Pair v = __hmul2(*reinterpret_cast<const Pair*>(&raw), f);
      pair[j] = *reinterpret_cast<const uint32_t*>(&v);
    }
  } else {
    const uint32_t lo = q & 0x0F0F0F0Fu, hi = (q >> 4) & 0x0F0F0F0Fu;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t y;
      asm("prmt.b32 %0, %1, %2, %3;" : "=r"(y) : "r"(lo), "r"(hi), "r"(uint32_t(j | 0x80 | (4 + j) << 8 | 0x8000)));
      const uint32_t raw = spread_e2m1_bf16(y, 0x1040u);
      const Pair v = __hmul2(*reinterpret_cast<const Pair*>(&raw), f);
      pair[j] = *reinterpret_cast<const uint32_t*>(&v);
    }
  }
}

// How a block's scale s is applied in the decode of T: the decoded codes times 2^(s - 127 - offset) are exact
// (normal or, in fp16, subnormal numbers) for s in [kLo, kLo + kSpan], and the block's float32 sums are then
// multiplied by 2^offset. bf16: factor 2^(s - 1 - offset) on codes decoded 2^-126 times too small, offset 10, s in
// [77, 138]. fp16: codes decoded 2^-14 times too small, offset 0, s in [104, 140] (at 103 half of the smallest code,
// 2^-25, is below fp16's subnormals; at 141 6 x 2^14 is above its largest): factor 2^(s - 113), a normal fp16 up to
// s = 128; above, 2^(s - 125) and then 2^12 (`high`, a second multiply).
template <typename T>
struct WgmmaScaleWindow;
template <>
struct WgmmaScaleWindow<__nv_bfloat16> {
  static constexpr uint32_t kLo = 77, kSpan = 61, kOffset = kBf16ScaleOffset;
  static __device__ __forceinline__ uint32_t factor(uint32_t s) { return (s + 126u - kOffset) * 0x00800080u; }
  static __device__ __forceinline__ bool high(uint32_t) { return false; }
};
template <>
struct WgmmaScaleWindow<__half> {
  static constexpr uint32_t kLo = 104, kSpan = 36, kOffset = 0;
  static __device__ __forceinline__ bool high(uint32_t s) { return s > 128u; }
  static __device__ __forceinline__ uint32_t factor(uint32_t s) {
    return ((high(s) ? s - 12u : s) - 98u) * 0x04000400u;
  }
  static constexpr uint32_t kHighFactor = 0x6C006C00u;  // 2^12, twice
};

// An activation (bf16 or fp16 bits in the low 16 bits of `bits`) as float32.
template <typename T>
__device__ __forceinline__ float activation_value(uint32_t bits) {
  if constexpr (std::is_same_v<T, __half>) {
    return __uint_as_float(f16_bits_to_f32_bits(bits));
  } else {
    return __uint_as_float(bits << 16);
  }
}

// Two float32 values rounded to a pair of OutT (bf16 or fp16) by the hardware, as the bits of one word.
template <typename OutT>
__device__ __forceinline__ uint32_t pair_bits(float a, float b) {
  if constexpr (std::is_same_v<OutT, __half>) {
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
}

// Four values to out[i .. i + 4): one 16-byte (float32) or 8-byte (bf16, fp16) store where `whole` (the four
// columns inside N, the output 16-byte aligned with rows a multiple of 4 apart), else the first `valid` one at a time.
// bf16 and fp16 take the hardware's rounding, and narrow()'s where a NaN is among them (the hardware makes NaNs
// canonical; the CPU keeps their sign and payload).
template <typename OutT>
__device__ __forceinline__ void store_out4(const W4A16Problem& p, int64_t i, const float (&v)[4], bool whole,
                                           int valid) {
  if (whole) {
    if constexpr (std::is_same_v<OutT, float>) {
      asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(static_cast<float*>(p.out) + i), "f"(v[0]),
                   "f"(v[1]), "f"(v[2]), "f"(v[3])
                   : "memory");
      return;
    } else {
      constexpr bool kHalf = std::is_same_v<OutT, __half>;
      constexpr FloatType kType = kHalf ? FloatType::f16 : FloatType::bf16;
      uint32_t w0 = pair_bits<OutT>(v[0], v[1]), w1 = pair_bits<OutT>(v[2], v[3]);
      // Bit 15 of a half ends up set where it is a NaN (magnitude above the infinity's, 0x7C00 or 0x7F80).
      constexpr uint32_t kToSign = kHalf ? 0x03FF03FFu : 0x007F007Fu;
      if ((((w0 & 0x7FFF7FFFu) + kToSign) | ((w1 & 0x7FFF7FFFu) + kToSign)) & 0x80008000u) {
        w0 = uint32_t(narrow<kType>(v[0])) | uint32_t(narrow<kType>(v[1])) << 16;
        w1 = uint32_t(narrow<kType>(v[2])) | uint32_t(narrow<kType>(v[3])) << 16;
      }
      asm volatile("st.global.v2.b32 [%0], {%1, %2};" ::"l"(static_cast<uint16_t*>(p.out) + i), "r"(w0), "r"(w1)
                   : "memory");
      return;
    }
  }
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (e < valid) store_out<OutT>(p.out, i + e, v[e]);
  }
}

template <typename T, typename OutT, typename S, bool PACKED>
__global__ void __launch_bounds__(S::THREADS, 1)
    w4a16_wgmma(W4A16Problem p, int splits, const __grid_constant__ CUtensorMap x_map) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BT = S::BT, BN = S::BN, MB = S::MB;
  // Named barrier ids of full (stage it decoded and landed), in turns of 3.
  constexpr int kFull = 1;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (shared_address(smem_raw) & 1023)) & 1023);
  const int tid = threadIdx.x;
  const int wg = __shfl_sync(0xFFFFFFFFu, tid >> 7, 0);
  const int64_t n0 = int64_t(blockIdx.x) * BN, m0 = int64_t(blockIdx.y) * BT;
  constexpr int kStageBlocks = S::STAGE_BLOCKS;
  const int nblk = int(p.k / 32), nst = (nblk + kStageBlocks - 1) / kStageBlocks;
  const int st_begin = int(int64_t(nst) * blockIdx.z / splits), st_end = int(int64_t(nst) * (blockIdx.z + 1) / splits);
  const int n_it = st_end - st_begin;
  const uint16_t* x = static_cast<const uint16_t*>(p.x);
  const uint32_t x_box_bytes = uint32_t(wgmma_box_rows<S>(p.m)) * 128 * S::SUBTILES;
  using Window = WgmmaScaleWindow<T>;
  bool bad = false;
  uint64_t* x_full = reinterpret_cast<uint64_t*>(smem + S::X_BARRIERS);  // a slot's activations have landed
  // A decoded slot's MMAs are done (an arrival per consumer thread).
  uint64_t* a_empty = reinterpret_cast<uint64_t*>(smem + S::A_BARRIERS);
  if (tid == 0) {
    for (int i = 0; i < S::X_SLOTS; ++i) mbarrier_init(x_full + i, 1);
    for (int i = 0; i < S::A_SLOTS; ++i) mbarrier_init(a_empty + i, 128);
    fence_mbarrier_init();
  }
  __syncthreads();

  float acc[MB][S::ACC];
#pragma unroll
  for (int mb = 0; mb < MB; ++mb)
#pragma unroll
    for (int i = 0; i < S::ACC; ++i) acc[mb][i] = 0.f;

  if (wg != 0) {
    // ---- producers ----
    setmaxnreg_dec<S::PRODUCER_REGS>();
    const int u = tid - 128;
    // Codes: decode unit b = u + PRODUCERS i is one 16-byte block of one column of the tile (past N: column N-1). Each
    // thread copies the blocks it decodes itself, so that waiting for its own copies is enough (no barrier among the
    // producers). A quarter warp's 16-byte stores go out together and must hit 8 distinct bank groups, so its 8 lanes
    // take 4 columns x the 2 blocks of one 64-value sub-tile (blocks 2h, 2h + 1 of a column in consecutive lanes):
    // each word's 8 stores then land in 8 distinct chunks of the swizzled rows. With 2 blocks a stage the order
    // b = 2 col + blk is that already. (With stages of 4 blocks in that order a quarter warp held a column's 4 blocks,
    // and blocks 0 and 2 are the same chunk of the two sub-tiles: on an H100 ncu counted 325-362 thousand bank
    // conflicts a call against 58-117 thousand now, and M=128 took 15.9 us against 14.9, bench/RESULTS.md,
    // twenty-third pass.)
    // With packed weights (mxfp4_cuda_layout.h) stage st is pair st of a tile: 512 code bytes and 32 scale bytes
    // further than stage st - 1. The lone last block (nblk odd, stage lone_st) has rows of 16 code bytes and 1 scale
    // byte instead of 32 and 2, so its unit (the pair's first block) lies 16 * row and row bytes nearer (lone_fix =
    // row): a correction in one stage, not a branch in every stage (with a branch to the exact offsets the producers
    // ran 259 instructions a stage, against 221 on plain weights; 225 now).
    constexpr int kUnits = S::UNITS;
    static_assert(kStageBlocks != 4 || BN % 8 == 0, "stages of 4 blocks: units in groups of 8 columns");
    auto unit_col = [](int b) {
      return kStageBlocks == 4 ? b / 32 * 8 + (b / 16) % 2 * 4 + (b / 2) % 4 : b / kStageBlocks;
    };
    auto unit_blk = [](int b) { return kStageBlocks == 4 ? (b / 8) % 2 * 2 + b % 2 : b % kStageBlocks; };
    const uint8_t* w_unit[S::DECODE_UNITS];
    const uint8_t* s_col[S::DECODE_UNITS];
    int lone_fix[S::DECODE_UNITS];
    // (Stages of 4 blocks: the lone block is block (nblk - 1) % 4 of stage (nblk - 1) / 4; only its units move.)
    const int lone_st = nblk % 2 ? (nblk - 1) / kStageBlocks : -1, lone_blk = (nblk - 1) % kStageBlocks;
#pragma unroll
    for (int i = 0; i < S::DECODE_UNITS; ++i) {
      const int b = min(u + S::PRODUCERS * i, kUnits - 1);
      const int64_t col = min(n0 + unit_col(b), p.n - 1);
      if constexpr (PACKED) {
        const SpanBlock first = first_span_block<true>(p, col, unit_blk(b), nblk);
        w_unit[i] = first.code, s_col[i] = first.scale;
        lone_fix[i] = unit_blk(b) == lone_blk ? int(col % kMxfp4CudaTileColumns) : 0;
      } else {
        w_unit[i] = p.w + col * p.ldw + unit_blk(b) * 16;
        s_col[i] = p.w_scales + col * p.ldw_scales + unit_blk(b);
        lone_fix[i] = 0;
      }
    }
    // The copies and the scale loads go through the stages in order, so their addresses run along: a 64-bit add per
    // stage, where working each stage's address out afresh (with the check against K) took a stage's producer code
    // from 183 to 200 instructions (SASS, plain weights) and, on an H100 (tests/gpu/tune_in_process.py), M=1024 from
    // 69.3 to 71.1 us, M=384 from 35.2 to 36.0, fp16 M=1024 from 71.1 to 73.4; M=128 even. Unit i's block of stage
    // st exists for st < stage_end[i].
    constexpr int kCodeStride = (PACKED ? int(kMxfp4CudaPairCodeBytes) / 2 : 16) * kStageBlocks;
    constexpr int kScaleStride = (PACKED ? int(kMxfp4CudaPairScaleBytes) / 2 : 1) * kStageBlocks;
    const uint8_t* code_next[S::DECODE_UNITS];
    const uint8_t* scale_next[S::DECODE_UNITS];
    int stage_end[S::DECODE_UNITS];
#pragma unroll
    for (int i = 0; i < S::DECODE_UNITS; ++i) {
      code_next[i] = w_unit[i] + st_begin * kCodeStride;
      scale_next[i] = s_col[i] + st_begin * kScaleStride;
      stage_end[i] = (nblk - unit_blk(min(u + S::PRODUCERS * i, kUnits - 1)) + kStageBlocks - 1) / kStageBlocks;
    }
    // Ring slots are tracked as running indices (no division per step): stage it's activations are in slot
    // x_slot, its codes in code_slot.
    // A stage's activations (64 values of the tile's 128 rows) come by one bulk tensor copy, which the first producer
    // thread issues, into the slot's swizzled tile; the consumer waits for them on the slot's mbarrier. (Copied by
    // every producer thread, 16 bytes at a time, they took about 45 of the producers' 225 instructions a stage:
    // M=128 18.67-18.71 us against 17.85-17.96 now, M=1024 86.3-87.4 against 74.5-74.6,
    // tests/gpu/tune_in_process.py on an H100.)
    auto issue_x = [&](int it, int slot_index) {
      if (u == 0) {
        mbarrier_arrive_expect_tx(x_full + slot_index, x_box_bytes);
#pragma unroll
        for (int h = 0; h < S::SUBTILES; ++h) {  // (a box wholly past K is filled with zeros too)
          tma_load_2d(smem + S::X_RING + slot_index * S::X_BYTES + h * S::X_SUB, &x_map, x_full + slot_index,
                      (st_begin + it) * S::STAGE_K + 64 * h, int(m0));
        }
      }
    };
    auto issue_codes = [&](int it, int slot_index) {  // it = 0, 1, 2... in turn
      uint8_t* slot = smem + S::CODE_RING + slot_index * S::CODE_BYTES;
      const int st = st_begin + it;
#pragma unroll
      for (int i = 0; i < S::DECODE_UNITS; ++i) {
        const int b = u + S::PRODUCERS * i;
        if (kUnits % S::PRODUCERS == 0 || b < kUnits) {
          const bool ok = st < stage_end[i];
          const int fix = PACKED && st == lone_st ? 16 * lone_fix[i] : 0;
          cp_async16(slot + b * 16, ok ? code_next[i] - fix : p.w, ok ? 16 : 0);
        }
        code_next[i] += kCodeStride;
      }
    };
    // Virtual step v issues the activations of stage v + X_SLOTS - 2 (into slot xs) and the codes of stage
    // v + CODE_SLOTS - 1 (slot cs), as one cp.async group; steps -(CODE_SLOTS - 1) .. -1 are the prologue.
    auto issue_step = [&](int v, int xs, int cs) {
      const int xi = v + S::X_SLOTS - 2, ci = v + S::CODE_SLOTS - 1;
      if (xi >= 0 && xi < n_it) issue_x(xi, xs);
      if (ci >= 0 && ci < n_it) issue_codes(ci, cs);
      cp_async_commit();
    };
    // Scales two stages ahead, in three register sets used in turn (the loop is unrolled by three, so that no
    // register copy waits for a load in flight); past K 127.
    uint32_t sc0[S::DECODE_UNITS], sc1[S::DECODE_UNITS], sc2[S::DECODE_UNITS];
    auto load_scales = [&](int it, uint32_t (&dst)[S::DECODE_UNITS]) {  // it = 0, 1, 2... in turn
      const int st = st_begin + it;
#pragma unroll
      for (int i = 0; i < S::DECODE_UNITS; ++i) {
        const int fix = PACKED && st == lone_st ? lone_fix[i] : 0;
        dst[i] = it < n_it && st < stage_end[i] ? uint32_t(__ldg(scale_next[i] - fix)) : 127u;
        scale_next[i] += kScaleStride;
      }
    };
    // Stage it: decode it with scales `cur`, hand it over, load the scales of stage it + 2 into `ahead`, then (once
    // stage it - 2's MMAs are done) issue virtual step it's copies.
    // `phase` = it % 3: the decoded slot and the barriers' turn.
    int x_slot = 0, code_slot = 0;
    auto step = [&](int it, auto phase, const uint32_t (&cur)[S::DECODE_UNITS], uint32_t (&ahead)[S::DECODE_UNITS]) {
      constexpr int kPhase = decltype(phase)::value;
      cp_async_wait<S::CODE_SLOTS - 2>();  // this thread's copies of stage it have landed
      const uint8_t* codes = smem + S::CODE_RING + code_slot * S::CODE_BYTES;
      uint8_t* a_tile = smem + S::A_RING + kPhase * S::A_BYTES;
#pragma unroll
      for (int i = 0; i < S::DECODE_UNITS; ++i) {
        const int b = u + S::PRODUCERS * i, col = unit_col(b), blk = unit_blk(b);
        if (kUnits % S::PRODUCERS != 0 && b >= kUnits) continue;
        const uint4 v = *reinterpret_cast<const uint4*>(codes + b * 16);
        const uint32_t q[4] = {v.x, v.y, v.z, v.w}, any = v.x | v.y | v.z | v.w;
        const uint32_t sv = cur[i];
        const bool in_window = sv - Window::kLo <= Window::kSpan;
        bad |= !in_window && ((any & 0x77777777u) != 0 || sv == 0xFFu);
        const uint32_t f = Window::factor(in_window ? sv : 127u);
        const bool high = in_window && Window::high(sv);
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          uint32_t pr[4];
          decode_e2m1x8_in_order<T>(q[w], f, pr);
          if constexpr (std::is_same_v<T, __half>) {
            if (high) {  // rare: weights of 16 and more
              const uint32_t second = Window::kHighFactor;
#pragma unroll
              for (int j = 0; j < 4; ++j) {
                const __half2 v = __hmul2(*reinterpret_cast<const __half2*>(&pr[j]),
                                          *reinterpret_cast<const __half2*>(&second));
                pr[j] = *reinterpret_cast<const uint32_t*>(&v);
              }
            }
          }
          const uint4 o = make_uint4(pr[0], pr[1], pr[2], pr[3]);
          const int chunk = (blk & 1) * 4 + w;
          *reinterpret_cast<uint4*>(a_tile + (blk >> 1) * S::A_SUB + col * 128 + ((chunk ^ (col & 7)) << 4)) = o;
        }
      }
      fence_proxy_async();
      named_arrive(kFull + kPhase, S::THREADS);
      // The scales' loads come after the fence, which compiles to MEMBAR.ALL.CTA and waits for the thread's loads in
      // flight; and each producer thread waits for the MMAs it needs done on the slot's mbarrier, not for the other
      // producers as a named barrier over all threads made it. Both together, on an H100 (tests/gpu/tune_in_process.py,
      // bench/RESULTS.md): bf16 M=128 16.75-16.78 us against 16.95-16.98, M=384 36.1-36.2 against 36.9-37.0, M=1024
      // 70.9-71.4 against 72.6; fp16 M=128 16.95-17.07 against 17.66-17.77, M=1024 73.4 against 79.2-79.5.
      load_scales(it + 2, ahead);
      // Stage it - 2's MMAs are done: its activation slot is refilled now and its decoded slot takes stage it + 1.
      if (it >= 2) mbarrier_wait(a_empty + (kPhase + 1) % 3, uint32_t(((it - 2) / 3) & 1));
      // Stage it + X_SLOTS - 2 goes where stage it - 2 was, the codes of stage it + CODE_SLOTS - 1 where stage it - 1's.
      issue_step(it, x_slot >= 2 ? x_slot - 2 : x_slot + S::X_SLOTS - 2,
                 code_slot >= 1 ? code_slot - 1 : S::CODE_SLOTS - 1);
      x_slot = x_slot + 1 == S::X_SLOTS ? 0 : x_slot + 1;
      code_slot = code_slot + 1 == S::CODE_SLOTS ? 0 : code_slot + 1;
    };
    // On plain weights the first two stages' scales are loaded before the prologue's copies are issued, and the lines
    // of the block's later scales (a column's row of them, 128 bytes) are asked of the L2 at once, so that the loads
    // two stages ahead do not wait on memory: on an H100, M=128 17.05-17.11 us against 17.86-17.97, M=200 23.5-23.6
    // against 24.3-24.35, M=1024 72.4-72.9 against 73.8-74.0 (tests/gpu/tune_in_process.py). On packed weights, where
    // a tile's 16 columns share each line, the same took M=32 and 1024 0.3-1.2 us longer, so they keep the order.
    if constexpr (!PACKED) {
      load_scales(0, sc0);
      load_scales(1, sc1);
#pragma unroll
      for (int i = 0; i < S::DECODE_UNITS; ++i) {
        for (int off = (st_begin + 2) * kStageBlocks; off < st_end * kStageBlocks; off += 128) {
          asm volatile("prefetch.global.L2 [%0];" ::"l"(s_col[i] + off));
        }
      }
    }
    for (int v = -(S::CODE_SLOTS - 1); v < 0; ++v) {
      issue_step(v, (v + S::X_SLOTS - 2 + S::X_SLOTS) % S::X_SLOTS, v + S::CODE_SLOTS - 1);
    }
    if constexpr (PACKED) {
      load_scales(0, sc0);
      load_scales(1, sc1);
    }
    for (int it = 0; it < n_it; it += 3) {
      step(it, std::integral_constant<int, 0>{}, sc0, sc2);
      if (it + 1 < n_it) step(it + 1, std::integral_constant<int, 1>{}, sc1, sc0);
      if (it + 2 < n_it) step(it + 2, std::integral_constant<int, 2>{}, sc2, sc1);
    }
    cp_async_wait<0>();
  } else {
    // ---- consumer ----
    setmaxnreg_inc<S::CONSUMER_REGS>();
    for (int it = 0, x_slot = 0, x_parity = 0, phase = 0; it < n_it; ++it) {
      named_sync(kFull + phase, S::THREADS);
      mbarrier_wait(x_full + x_slot, uint32_t(x_parity));
      const uint64_t desc_x = swizzled_tile_descriptor(smem + S::X_RING + x_slot * S::X_BYTES);
      const uint64_t desc_w = swizzled_tile_descriptor(smem + S::A_RING + phase * S::A_BYTES);
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) keep_registers(acc[mb]);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < S::STAGE_K / 16; ++kk)
#pragma unroll
        for (int mb = 0; mb < MB; ++mb) {
          // Descriptor addresses count 16 bytes: 16 K values are 32 bytes into a row, a sub-tile further on.
          const uint64_t x_k = (kk / 4) * (S::X_SUB >> 4) + 2 * (kk % 4), w_k = (kk / 4) * (S::A_SUB >> 4) + 2 * (kk % 4);
          if constexpr (S::WEIGHTS_AS_B) {
            wgmma_ss<T, S::MMA_N>(acc[mb], desc_x + mb * (8192 >> 4) + x_k, desc_w + w_k);
          } else {
            wgmma_ss<T, S::MMA_N>(acc[mb], desc_w + mb * (8192 >> 4) + w_k, desc_x + x_k);
          }
        }
      wgmma_commit();
      wgmma_wait<1>();
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) keep_registers(acc[mb]);
      // Stage it - 1's MMAs are done; the producers wait for that at their step it + 1 (the last stage's arrival
      // has no waiter). Every consumer thread arrives: one lane per warp, a branch here, made ptxas serialize the
      // MMAs (C7515).
      if (it >= 1) mbarrier_arrive(a_empty + (phase + 2) % 3);
      if (++x_slot == S::X_SLOTS) x_slot = 0, x_parity ^= 1;
      phase = phase == 2 ? 0 : phase + 1;
    }
    wgmma_wait<0>();
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) keep_registers(acc[mb]);
    // Every stage's activations have landed and been read (the consumer waited for each stage's copy on its slot's
    // mbarrier, and no copy goes past the last stage), so the activation ring can take the partial sums (the
    // exact path below overwrites them where a block needs it). This is inside the branch so that the accumulators
    // need not live where the producers' register limit applies. D fragments: warp w, lane (g, t) holds MMA rows
    // 16 w + g (+ 8) of each 64 (weights as A: columns; as B: activation rows), MMA columns 8 j + 2 t (+ 1).
    float* part = reinterpret_cast<float*>(smem + S::PART);
    const int lane = tid & 31, g = lane >> 2, t = lane & 3, c0 = (tid >> 5) * 16 + g;
    const float total_scale = float(1u << Window::kOffset);
#pragma unroll
    for (int mb = 0; mb < MB; ++mb)
#pragma unroll
      for (int j = 0; j < S::MMA_N / 8; ++j) {
        if constexpr (S::WEIGHTS_AS_B) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            *reinterpret_cast<float2*>(part + (64 * mb + c0 + 8 * h) * S::PART_PITCH + 8 * j + 2 * t) =
                make_float2(acc[mb][4 * j + 2 * h] * total_scale, acc[mb][4 * j + 2 * h + 1] * total_scale);
          }
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            part[(8 * j + 2 * t + (e & 1)) * S::PART_PITCH + 64 * mb + c0 + (e >= 2 ? 8 : 0)] =
                acc[mb][4 * j + e] * total_scale;
          }
        }
      }
  }
  bad = __syncthreads_or(bad) != 0;
  __syncthreads();  // (racecheck does not take the reduction above as a barrier for the partial sums)

  float* part = reinterpret_cast<float*>(smem + S::PART);
  if (bad) {
    // The exact path: per 32-value block, a float32 sum of exact products times the block's scale, added to the
    // row's total in block order. A thread takes one column and half of the rows, decodes each block's codes once
    // and keeps the totals in `part` (rows past M and columns past N are left as they are: never stored).
    const int b_begin = kStageBlocks * st_begin, b_end = min(kStageBlocks * st_end, nblk);
    const int rows = int(min(int64_t(BT), p.m - m0));
    for (int item = tid; item < 2 * BN; item += S::THREADS) {
      const int c = item % BN, r_begin = item < BN ? 0 : BT / 2, r_end = min(r_begin + BT / 2, rows);
      if (n0 + c >= p.n) continue;
      const uint8_t* wr = p.w + (n0 + c) * p.ldw;
      for (int b = b_begin; b < b_end; ++b) {
        const uint8_t* codes = PACKED ? p.w + mxfp4_cuda_code_offset(n0 + c, b, nblk) : wr + 16 * b;
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(codes));
        const uint32_t word[4] = {q.x, q.y, q.z, q.w};
        float w[32];  // code k of the block (bits 4k.. of the little-endian block)
#pragma unroll
        for (int k = 0; k < 32; ++k) w[k] = e2m1_value((word[k >> 3] >> (4 * (k & 7))) & 0xFu);
        const float scale = e8m0_value(PACKED ? p.w[mxfp4_cuda_scale_offset(n0 + c, b, nblk)]
                                                  : p.w_scales[(n0 + c) * p.ldw_scales + b]);
        for (int r = r_begin; r < r_end; ++r) {
          const uint4* xr = reinterpret_cast<const uint4*>(x + (m0 + r) * p.ldx + 32 * b);
          float sum = 0.f;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint4 v = __ldg(xr + i);
            const uint32_t xs[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              sum = fmaf(activation_value<T>(xs[e] & 0xFFFFu), w[8 * i + 2 * e], sum);
              sum = fmaf(activation_value<T>(xs[e] >> 16), w[8 * i + 2 * e + 1], sum);
            }
          }
          float& total = part[r * S::PART_PITCH + c];
          total = b == b_begin ? sum * scale : total + sum * scale;
        }
      }
    }
  }
  __syncthreads();

  // Sum the cluster's partial sums in rank order; block `rank` stores rows rank, rank + splits, ... A thread keeps
  // one group of 4 columns and takes every kRowsPerRound-th of the block's rows, so that its column checks, bias and
  // addresses are worked out once, a row's loads are contiguous (as distributed shared memory wants them) and its
  // stores are 8 (bf16) or 16 bytes (float32). (Against two columns per thread and item, recomputed for each, this
  // took an H200 from 46.1 to 45.1 us at M=384 and from 90.6 to 88.8 us at M=1024, tests/gpu/tune_cuda.cu.)
  const int rank = splits > 1 ? int(blockIdx.z) : 0;
  constexpr int kGroups = BN / 4, kRowsPerRound = S::THREADS / kGroups;
  namespace cg = cooperative_groups;
  const float* ranks[4] = {part, part, part, part};
  if (splits > 1) {
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
#pragma unroll
    for (int q = 0; q < 4; ++q) ranks[q] = cluster.map_shared_rank(part, q < splits ? q : 0);
  }
  const int rows = int(min(int64_t(BT), p.m - m0));
  const int my_rows = rows > rank ? (rows - rank + splits - 1) / splits : 0;
  if (tid < kRowsPerRound * kGroups) {
    const int group = tid % kGroups, first = tid / kGroups;
    const int64_t col = n0 + 4 * group;
    float bias[4] = {0.f, 0.f, 0.f, 0.f};
    if (p.bias) {
#pragma unroll
      for (int e = 0; e < 4; ++e) bias[e] = col + e < p.n ? p.bias[col + e] : 0.f;
    }
    const bool whole = col + 4 <= p.n && reinterpret_cast<uintptr_t>(p.out) % 16 == 0 && p.ldo % 4 == 0;
#pragma unroll 2
    for (int rr = first; rr < my_rows; rr += kRowsPerRound) {
      const int r = rank + splits * rr, off = r * S::PART_PITCH + 4 * group;
      float4 v = *reinterpret_cast<const float4*>(ranks[0] + off);
#pragma unroll
      for (int q = 1; q < 4; ++q) {
        if (q < splits) {
          const float4 o = *reinterpret_cast<const float4*>(ranks[q] + off);
          v.x += o.x, v.y += o.y, v.z += o.z, v.w += o.w;
        }
      }
      const float out4[4] = {v.x + bias[0], v.y + bias[1], v.z + bias[2], v.w + bias[3]};
      store_out4<OutT>(p, (m0 + r) * p.ldo + col, out4, whole, int(min(int64_t(4), p.n - col)));
    }
  }
  if (splits > 1) cg::this_cluster().sync();  // the others' partial sums stay in place until every block has read them
#else
  __trap();  // launched only where the sm_90a code was built (kHaveWgmma) and the device is compute capability 9.0
#endif
}

}  // namespace
}  // namespace mxkernels::core::cuda
