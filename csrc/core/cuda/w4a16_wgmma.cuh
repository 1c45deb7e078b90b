// The W4A16 kernel for large M with bf16 activations on Hopper: warpgroup MMAs (wgmma, sm_90a), the decoded weights
// as the register A operand (64 output columns per warpgroup), the activations as the B operand read by the tensor
// cores straight from shared memory (BT rows of a 64-value K slice per stage, 128-byte swizzled rows, staged with
// cp.async). A block takes 128 columns: each of its two warpgroups runs its own pipeline over half of K for all 128
// columns (two 64-column MMAs per k step), so that while one decodes, the other's MMAs keep the tensor cores busy;
// their sums meet in shared memory. The launcher uses it only where the tiles fill the multiprocessors (no K split
// over blocks).
//
// The k order of an MMA is fixed here by the activations' natural order in shared memory, so lane t of a quad needs
// byte t of each 4-byte word of its column's block: it reads the whole 16-byte block (the quad's lanes read the same
// address, one broadcast) and gathers its four bytes with three byte permutes; one swap of nibble pairs then gives
// decode_e2m1x8 each byte's two codes as one pair (decode_gathered).
//
// Scales: where every scale of the block's 128 columns is in [77, 138], each 32-value block's scale is applied in
// the decode as in the other kernels (its own scale over 2^10) and the tensor cores sum the whole K range in float32,
// then the total is multiplied by 2^10. Otherwise the block takes the exact path: each 32-value block's sums come
// from mma.sync (the activations read from the same swizzled tiles), multiplied by the block's scale in float32 and
// added to the float32 total, as on the CPU.
#pragma once
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

// Keeps registers that an in-flight wgmma reads or writes where they are until this point.
template <int N>
__device__ __forceinline__ void keep_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Shared-memory matrix descriptor of a K-major tile with 128-byte swizzled rows (8-row groups 1024 bytes apart); the
// start address advances by 32 bytes (2 in the descriptor) per 16 K values.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(const void* smem) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

// D (64 x N, float32) += A (64 x 16 bf16, registers: each warp's 16 rows as in mma.m16n8k16) * B (16 x N, shared).
template <int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc);

template <>
__device__ __forceinline__ void wgmma_rs<128>(float (&d)[64], const uint32_t (&a)[4], uint64_t desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "n"(1)
      : "memory");
}

// Lane t's byte t of each word of a 16-byte block v (words v.x..v.w: K values 8i..8i+7), decoded times `factor`:
// pair[i] = the two codes of that byte (K 8i + 2t and 8i + 2t + 1). The gather puts the words' bytes in the order
// (0, 2, 1, 3), so that one swap of nibbles 1, 3 with 4, 6 leaves each byte's low code at nibble i and its high
// code at nibble i + 4, which decode_e2m1x8 pairs. sel = t | (t + 4) << 4.
__device__ __forceinline__ void decode_gathered(const uint4& v, uint32_t sel, uint32_t factor, uint32_t pair[4]) {
  const uint32_t even = __byte_perm(v.x, v.z, sel), odd = __byte_perm(v.y, v.w, sel);
  uint32_t h = __byte_perm(even, odd, 0x5410);
  const uint32_t d = ((h >> 12) ^ h) & 0x0000F0F0u;
  h ^= d ^ (d << 12);
  decode_e2m1x8<__nv_bfloat16>(h, factor, pair);
}

template <int BT_, int STAGES_>
struct WgmmaShape {
  static constexpr int BT = BT_, BN = 128, THREADS = 256, STAGES = STAGES_;
  static constexpr int X_BYTES = BT * 128, W_BYTES = BN * 32, STAGE_BYTES = X_BYTES + W_BYTES;
  static constexpr int PIPE_BYTES = STAGES * STAGE_BYTES;  // per warpgroup
  static constexpr int PART_PITCH = BN + 4;  // floats; the partial sums' rows, conflict-free for the D fragments
  static constexpr int PART_BYTES = BT * PART_PITCH * 4;
  // + 1024: the swizzled tiles need 1024-byte alignment, which the dynamic shared memory does not promise.
  static constexpr int SMEM = (2 * PIPE_BYTES > PART_BYTES ? 2 * PIPE_BYTES : PART_BYTES) + 1024;
  static_assert(STAGES >= 2 && BT == 128, "wgmma_rs has the m64n128k16 form only");
};

// Named barrier `id` over the 128 threads of one warpgroup.
__device__ __forceinline__ void warpgroup_sync(int id) { asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory"); }

template <typename OutT, typename S>
__global__ void __launch_bounds__(S::THREADS, 1) w4a16_wgmma(W4A16Problem p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BT = S::BT, ND = BT / 2, STAGES = S::STAGES;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) & 1023)) & 1023);
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3, wtid = tid & 127;
  // The warpgroup and warp indices through a shuffle from lane 0, so that the compiler sees warp-uniform values
  // (wgmma in a branch it cannot prove uniform gets serialized).
  const int wg = __shfl_sync(0xFFFFFFFFu, tid >> 7, 0), warp = __shfl_sync(0xFFFFFFFFu, (tid >> 5) & 3, 0);
  const int64_t n0 = int64_t(blockIdx.x) * S::BN, m0 = int64_t(blockIdx.y) * BT;
  const int nblk = int(p.k / 32), nst = (nblk + 1) / 2;
  // This warpgroup's half of the stages (64 K values each).
  const int st_begin = wg == 0 ? 0 : nst / 2, st_end = wg == 0 ? nst / 2 : nst;
  const int n_it = st_end - st_begin;
  uint8_t* pipe = smem + wg * S::PIPE_BYTES;
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);

  // Staging (per warpgroup): thread wtid copies 16-byte chunk wtid % 8 of activation rows wtid / 8 + 16 i (rows
  // past M read row M-1, their sums dropped), and chunk wtid % 2 of weight columns wtid / 2 + 64 i (past N: column
  // N-1); past K, zeros. Columns are 32 bytes apart, their two chunks swapped where bit 2 of the column is set, so
  // that the 8 columns a warp reads at once hit distinct banks.
  constexpr int XR = BT / 16;
  const int xc = wtid & 7, xr0 = wtid >> 3;
  // Byte offsets from the tile's first row (32 bits: wgmma_fits checks the strides).
  const uint8_t* x_tile = reinterpret_cast<const uint8_t*>(x + m0 * p.ldx + xc * 8);
  uint32_t x_off[XR];
#pragma unroll
  for (int i = 0; i < XR; ++i) x_off[i] = uint32_t(min(int64_t(xr0 + 16 * i), p.m - 1 - m0) * p.ldx * 2);
  const int x_dst = xr0 * 128 + ((xc ^ (xr0 & 7)) << 4);
  const int wr = wtid >> 1, wb = wtid & 1;
  const uint8_t* w_tile = p.w + n0 * p.ldw + wb * 16;
  uint32_t w_off[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) w_off[i] = uint32_t(min(int64_t(wr + 64 * i), p.n - 1 - n0) * p.ldw);
  const int w_dst = S::X_BYTES + wr * 32 + ((wb ^ ((wr >> 2) & 1)) << 4);
  auto issue = [&](int it, int slot) {
    uint8_t* stage = pipe + slot * S::STAGE_BYTES;
    const int64_t k0 = int64_t(st_begin + it) * 64;
    const bool x_ok = k0 + xc * 8 < p.k;
#pragma unroll
    for (int i = 0; i < XR; ++i) {
      cp_async16(stage + x_dst + i * 2048, x_ok ? x_tile + x_off[i] + 2 * k0 : p.x, x_ok ? 16 : 0);
    }
    const bool w_ok = k0 + wb * 32 < p.k;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      cp_async16(stage + w_dst + i * 2048, w_ok ? w_tile + w_off[i] + k0 / 2 : p.w, w_ok ? 16 : 0);
    }
  };

  // Whether every scale of the block's 128 columns in its warpgroup's K range is in the window: thread wtid checks
  // column wtid, its loads issued together (each a round trip to memory otherwise), while the first stages load.
  bool in_window = true;
  {
    const uint8_t* row = p.w_scales + min(n0 + wtid, p.n - 1) * p.ldw_scales;
    const int b_end = min(2 * st_end, nblk);
    for (int b0 = 2 * st_begin; b0 < b_end; b0 += 32) {
      uint32_t v[32];
#pragma unroll
      for (int i = 0; i < 32; ++i) v[i] = b0 + i < b_end ? uint32_t(__ldg(row + b0 + i)) : 127u;
#pragma unroll
      for (int i = 0; i < 32; ++i) in_window &= v[i] - 77u <= 61u;
    }
  }
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < n_it) issue(s, s);
    cp_async_commit();
  }

  // This thread's columns (rows of the MMAs' A): c0 and c0 + 8 of each 64-column half.
  const int c0 = warp * 16 + g;
  const uint8_t* s_tile = p.w_scales + n0 * p.ldw_scales;
  uint32_t s_off[2][2];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int r = 0; r < 2; ++r) s_off[h][r] = uint32_t(min(int64_t(64 * h + c0 + 8 * r), p.n - 1 - n0) * p.ldw_scales);
  const bool fast = __shfl_sync(0xFFFFFFFFu, __syncthreads_and(in_window), 0) != 0;

  // Scales of a stage, [half][column c0, c0 + 8][block]; past K 127.
  uint32_t sc[2][2][2];
  auto load_scales = [&](int it) {
    const int b = 2 * (st_begin + it);
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        sc[h][r][0] = it < n_it ? __ldg(s_tile + s_off[h][r] + b) : 127u;
        sc[h][r][1] = it < n_it && b + 1 < nblk ? __ldg(s_tile + s_off[h][r] + b + 1) : 127u;
      }
  };
  load_scales(0);

  float acc[2][ND];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int i = 0; i < ND; ++i) acc[h][i] = 0.f;
  const uint32_t sel = uint32_t(t) | uint32_t(t + 4) << 4;
  const int w_read = S::X_BYTES + c0 * 32 + (((g >> 2) & 1) << 4);  // block 0 of column c0; block 1 at ^ 16

  // The 4 k steps' A operands of a stage for half h (both blocks of columns c0, c0 + 8), decoded times f[column][blk].
  auto decode_half = [&](const uint8_t* stage, int h, const uint32_t (&f)[2][2], uint32_t (&ak)[4][4]) {
#pragma unroll
    for (int blk = 0; blk < 2; ++blk) {
      const int off = (w_read ^ (blk << 4)) + h * 2048;
      const uint4 v0 = *reinterpret_cast<const uint4*>(stage + off);
      const uint4 v1 = *reinterpret_cast<const uint4*>(stage + off + 8 * 32);
      uint32_t p0[4], p1[4];
      decode_gathered(v0, sel, f[0][blk], p0);
      decode_gathered(v1, sel, f[1][blk], p1);
      ak[2 * blk][0] = p0[0], ak[2 * blk][1] = p1[0], ak[2 * blk][2] = p0[1], ak[2 * blk][3] = p1[1];
      ak[2 * blk + 1][0] = p0[2], ak[2 * blk + 1][1] = p1[2], ak[2 * blk + 1][2] = p0[3], ak[2 * blk + 1][3] = p1[3];
    }
  };

  // Stage it: wait for it to land, start copying stage it + STAGES - 1 into the slot that stage it - 1 used (its
  // MMAs are done), then run `consume` on it.
  auto pipeline_step = [&](int it, auto&& consume) {
    cp_async_wait<STAGES - 2>();
    fence_proxy_async();
    warpgroup_sync(1 + wg);
    if (it + STAGES - 1 < n_it) issue(it + STAGES - 1, (it + STAGES - 1) % STAGES);
    cp_async_commit();
    consume(pipe + (it % STAGES) * S::STAGE_BYTES);
  };
  if (fast) {
    for (int it = 0; it < n_it; ++it) {
      pipeline_step(it, [&](const uint8_t* stage) {
        uint32_t a[2][4][4];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          uint32_t f[2][2];
#pragma unroll
          for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int b = 0; b < 2; ++b) f[r][b] = (sc[h][r][b] + 126u - kBf16ScaleOffset) * 0x00800080u;
          decode_half(stage, h, f, a[h]);
        }
        load_scales(it + 1);
        const uint64_t desc = swizzled_tile_descriptor(stage);
        keep_registers(acc[0]);
        keep_registers(acc[1]);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          wgmma_rs<BT>(acc[0], a[0][kk], desc + 2 * kk);
          wgmma_rs<BT>(acc[1], a[1][kk], desc + 2 * kk);
        }
        wgmma_commit();
        // All of them done before the next stage's decode redefines the A registers (an overlap makes the compiler
        // serialize the MMAs); the other warpgroup's MMAs fill the gap.
        wgmma_wait<0>();
        keep_registers(acc[0]);
        keep_registers(acc[1]);
      });
    }
  } else {
    for (int it = 0; it < n_it; ++it) {
      pipeline_step(it, [&](const uint8_t* stage) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t f[2][2] = {{fold_factor<__nv_bfloat16>(0), fold_factor<__nv_bfloat16>(0)},
                                    {fold_factor<__nv_bfloat16>(0), fold_factor<__nv_bfloat16>(0)}};
          uint32_t ak[4][4];
          decode_half(stage, h, f, ak);
#pragma unroll
          for (int blk = 0; blk < 2; ++blk) {
            const float g0 = e8m0_value(sc[h][0][blk]), g1 = e8m0_value(sc[h][1][blk]);
#pragma unroll
            for (int j = 0; j < BT / 8; ++j) {
              // B fragments of rows 8j + g: K slots 2t, 2t + 1 (chunk 2 kk), 2t + 8, 2t + 9 (chunk 2 kk + 1).
              const uint8_t* xrow = stage + (8 * j + g) * 128 + 4 * t;
              float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
              for (int q = 0; q < 2; ++q) {
                const int kk = 2 * blk + q;
                const uint32_t b0 = *reinterpret_cast<const uint32_t*>(xrow + (((2 * kk) ^ g) << 4));
                const uint32_t b1 = *reinterpret_cast<const uint32_t*>(xrow + (((2 * kk + 1) ^ g) << 4));
                mma_16816<__nv_bfloat16>(d, ak[kk], b0, b1, d);
              }
              scale_add(acc[h] + 4 * j, d, g0, g1);
            }
          }
        }
        load_scales(it + 1);
      });
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // both warpgroups are done with their stages, which now hold the partial sums

  // Partial sums as [row of x][column]: warpgroup 0 stores, warpgroup 1 adds (a fixed order); then they are stored
  // column-contiguous.
  float* part = reinterpret_cast<float*>(smem);
  const float total_scale = fast ? float(1u << kBf16ScaleOffset) : 1.f;
  for (int turn = 0; turn < 2; ++turn) {
    if (wg == turn) {
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int j = 0; j < BT / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float& slot = part[(8 * j + 2 * t + (e & 1)) * S::PART_PITCH + 64 * h + c0 + (e >= 2 ? 8 : 0)];
            const float v = acc[h][4 * j + e] * total_scale;
            slot = turn == 0 ? v : slot + v;
          }
    }
    __syncthreads();
  }
  const int col = tid & (S::BN - 1);
  const float bias = p.bias && n0 + col < p.n ? p.bias[n0 + col] : 0.f;
  for (int r = tid / S::BN; r < BT; r += S::THREADS / S::BN) {
    if (m0 + r < p.m && n0 + col < p.n) {
      store_out<OutT>(p.out, (m0 + r) * p.ldo + n0 + col, part[r * S::PART_PITCH + col] + bias);
    }
  }
#else
  __trap();  // launched only where the sm_90a code was built (kHaveWgmma) and the device is compute capability 9.0
#endif
}

}  // namespace
}  // namespace mxkernels::core::cuda
