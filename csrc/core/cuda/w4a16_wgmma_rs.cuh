// The W4A16 kernel for M > 16 with bf16 activations on Hopper, with the decoded codes as the register operand of the
// warpgroup MMAs (wgmma, sm_90a): w4a16_wgmma_rs below.
#pragma once
#include "cuda/w4a16_wgmma.cuh"

namespace mxkernels::core::cuda {
namespace {

// D (64 x 128, float32) += A (64 x 16 bf16, registers) * B (16 x 128 bf16, a K-major swizzled tile in shared memory).
__device__ __forceinline__ void wgmma_rs_m64n128(float (&d)[64], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                 uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
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
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b)
      : "memory");
}

// mbarriers in shared memory: each consumer warpgroup waits for its own stage, so that the warpgroups need not move
// in step (a named barrier over all of them would make each wait for the other's MMAs).
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}

// ---- the kernel --------------------------------------------------------------------------------------------------
// CWG consumer warpgroups each take 64 columns (BN = 64 CWG) and 128 activation rows; one producer warpgroup copies
// the activations of each 64-value K stage into a ring of X_SLOTS 128-byte swizzled tiles (cp.async, LEAD stages
// ahead). Each consumer thread loads its own codes straight into registers (CODE_AHEAD stages ahead), decodes them
// into the A operand of its warpgroup's m64n128k16 wgmma, and waits for its MMAs before decoding the next stage
// (ptxas serializes register-A wgmma whose registers are rewritten while they run): the warpgroups take turns on the
// tensor cores, one decoding while the other's MMAs run. So the decoded weights never pass through shared memory.
//
// The K order inside a stage is the one that lets each thread decode contiguous codes: lane (g, t) of a warp holds
// bytes 8t..8t+7 of its two columns' 32-byte stage (values 16t..16t+15, in order: pairs p0..p7), and MMA step j
// takes pairs p(2j) and p(2j+1) in its K slots 2t, 2t+1 and 2t+8, 2t+9. The activations follow: slot 2t + 8h + e of
// step j is value 16t + 4j + 2h + e of the stage, so 16-byte chunk 2j + h of a row holds word 2j + h (mod 4) of
// chunks 2t + j / 2, t = 0..3; the producer copies them 4 bytes at a time to those places (each warp instruction one
// row's 128 bytes, conflict-free in the swizzled tile).
//
// Scales as in w4a16_wgmma: each block's scale over 2^10 is folded into the decode where that is exact (scales in
// [77, 138], or blocks whose codes are all zeros); any other block sends the whole tile to the exact path. K may be
// split over a cluster of blocks, whose partial sums meet in rank order through distributed shared memory.
#ifdef RS_TRACE
__device__ long long g_rs_trace[4][64][4];
#define RS_MARK(who, it, k) do { if (blockIdx.x == 7 && blockIdx.z == 0 && (threadIdx.x & 127) == 0 && (it) < 64) g_rs_trace[who][it][k] = clock64(); } while (0)
#else
#define RS_MARK(who, it, k) do {} while (0)
#endif
template <int CWG_, int X_SLOTS_, int CODE_AHEAD_, int PROBE_ = 0>
struct WgmmaRsShape {
  static constexpr int PROBE = PROBE_;
  static constexpr int CWG = CWG_, BN = 64 * CWG, BT = 128, THREADS = 128 * (CWG + 1);
  static constexpr int X_SLOTS = X_SLOTS_, LEAD = X_SLOTS - 2, CODE_AHEAD = CODE_AHEAD_;
  static constexpr int X_BYTES = BT * 128;
  static constexpr int X_RING = 0, PART = X_SLOTS * X_BYTES;
  static constexpr int PART_PITCH = BN + 4;  // floats; conflict-free for the D fragments, rows 16-byte aligned
  static constexpr int PART_BYTES = BT * PART_PITCH * 4;
  static constexpr int BARS = PART + PART_BYTES;  // 2 X_SLOTS mbarriers: full, then empty
  static constexpr int SMEM = BARS + 16 * X_SLOTS + 1024;  // + 1024: the swizzled tiles need 1024-byte alignment
  // Registers per thread: with more than two consumer warpgroups the launch share (65536 / THREADS) is too small for
  // the consumers, so setmaxnreg moves registers from the producer.
  static constexpr int LAUNCH_REGS = 65536 / THREADS / 8 * 8;
  static constexpr int CONSUMER_REGS = CWG <= 2 ? 0 : 144;
  static constexpr int PRODUCER_REGS = CWG <= 2 ? 0 : (65536 - CONSUMER_REGS * 128 * CWG) / 128 / 8 * 8;
  static_assert(X_SLOTS >= 3, "rings");
  static_assert(SMEM <= 227 * 1024, "shared memory");
  static_assert(CWG <= 2 || PRODUCER_REGS >= 40, "registers");
};

template <typename OutT, typename S>
__global__ void __launch_bounds__(S::THREADS, 1) w4a16_wgmma_rs(W4A16Problem p, int splits) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BT = S::BT, BN = S::BN;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) & 1023)) & 1023);
  const int tid = threadIdx.x;
  const int wg = __shfl_sync(0xFFFFFFFFu, tid >> 7, 0);
  const int64_t n0 = int64_t(blockIdx.x) * BN, m0 = int64_t(blockIdx.y) * BT;
  const int nblk = int(p.k / 32), nst = (nblk + 1) / 2;
  const int st_begin = int(int64_t(nst) * blockIdx.z / splits), st_end = int(int64_t(nst) * (blockIdx.z + 1) / splits);
  const int n_it = st_end - st_begin;
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);
  bool bad = false;
  float* part = reinterpret_cast<float*>(smem + S::PART);
  // full[slot]: its stage has landed (each producer thread arrives once its copies have); empty[slot]: its MMAs are
  // done (each consumer thread arrives). Use u of a slot (stage it, u = it / X_SLOTS) completes phase u.
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + S::BARS);
  uint64_t* empty = full + S::X_SLOTS;
  if (tid < S::X_SLOTS) {
    mbar_init(full + tid, 128);
    mbar_init(empty + tid, 128 * S::CWG);
  }
  __syncthreads();

  if (wg == 0) {
    // ---- producer ----
    if constexpr (S::PRODUCER_REGS > 0) setmaxnreg_dec<S::PRODUCER_REGS>();
    // Chunk c = tid % 8 (8 values) of rows tid / 8 + 16 i, at c ^ (row % 8) in the 128-byte swizzled rows.
    const int xc = tid & 7;
    const int rows_here = int(min(int64_t(BT), p.m - m0));
    const __nv_bfloat16* x_tile = x + m0 * p.ldx + 8 * xc;
    auto issue = [&](int it) {
      uint8_t* slot = smem + S::X_RING + (it % S::X_SLOTS) * S::X_BYTES;
      const int64_t k0 = int64_t(st_begin + it) * 64;
      const bool ok = k0 + 8 * xc < p.k;
#pragma unroll
      for (int i = 0; i < BT / 16; ++i) {
        const int row = (tid >> 3) + 16 * i;
        cp_async16(slot + row * 128 + ((xc ^ (row & 7)) << 4),
                   ok ? x_tile + min(row, rows_here - 1) * p.ldx + k0 : p.x, ok ? 16 : 0);
      }
    };
    if constexpr (S::PROBE >= 6) {
      // Register path: lane (r, c) = (lane / 8, lane % 8) loads chunk c of rows 4 warp + r + 16 i and stores word w
      // of it to word c / 2 of chunk 4 (c % 2) + w (the K order the consumers decode in), 4 bytes at a time.
      const int pw = tid >> 5, lane = tid & 31, c = lane & 7, rsub = lane >> 3;
      const __nv_bfloat16* src0 = x + m0 * p.ldx + 8 * c;
      uint32_t dst[4];
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const int row = 4 * pw + rsub;  // row % 8 is the same for rows + 16 i
        dst[w] = uint32_t(row * 128 + (((4 * (c & 1) + w) ^ (row & 7)) << 4) + 4 * (c >> 1));
      }
      constexpr int kSets = 2;
      uint4 buf[kSets][8];
      auto load_x = [&](int set, int it) {
        const int64_t k0 = int64_t(st_begin + it) * 64;
        const bool ok = it < n_it && k0 + 8 * c < p.k;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int row = 4 * pw + rsub + 16 * i;
          buf[set][i] = ok ? *reinterpret_cast<const uint4*>(src0 + min(row, rows_here - 1) * p.ldx + k0)
                           : make_uint4(0, 0, 0, 0);
        }
      };
#pragma unroll
      for (int u = 0; u < kSets; ++u) load_x(u, u);
      for (int it0 = 0; it0 < n_it; it0 += kSets) {
#pragma unroll
        for (int u = 0; u < kSets; ++u) {
          const int it = it0 + u;
          if (it >= n_it) break;
          RS_MARK(0, it, 0);
          if (it >= S::X_SLOTS) mbar_wait(empty + it % S::X_SLOTS, uint32_t(it / S::X_SLOTS - 1) & 1);
          RS_MARK(0, it, 1);
          uint8_t* slot = smem + S::X_RING + (it % S::X_SLOTS) * S::X_BYTES;
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const uint32_t v[4] = {buf[u][i].x, buf[u][i].y, buf[u][i].z, buf[u][i].w};
#pragma unroll
            for (int w = 0; w < 4; ++w) *reinterpret_cast<uint32_t*>(slot + dst[w] + 16 * 128 * i) = v[w];
          }
          RS_MARK(0, it, 2);
          if constexpr (S::PROBE != 7) fence_proxy_async();
          mbar_arrive(full + it % S::X_SLOTS);
          RS_MARK(0, it, 3);
          load_x(u, it + kSets);
        }
      }
    } else if constexpr (S::PROBE == 5) {
      for (int it = 0; it < n_it; ++it) {
        if (it >= S::X_SLOTS) mbar_wait(empty + it % S::X_SLOTS, uint32_t(it / S::X_SLOTS - 1) & 1);
        issue(it);
        asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_u32(full + it % S::X_SLOTS)) : "memory");
      }
    } else {
    for (int s = 0; s < S::LEAD; ++s) {
      if (s < n_it) issue(s);
      cp_async_commit();
    }
    for (int it = 0; it < n_it; ++it) {
      RS_MARK(0, it, 0);
      cp_async_wait<S::LEAD - 1>();  // this thread's copies of stage it have landed
      RS_MARK(0, it, 1);
      if constexpr (S::PROBE != 4) fence_proxy_async();
      mbar_arrive(full + it % S::X_SLOTS);
      const int s = it + S::LEAD;
      if (s < n_it) {
        // Its slot held stage s - X_SLOTS, whose MMAs must be done.
        if (s >= S::X_SLOTS) mbar_wait(empty + s % S::X_SLOTS, uint32_t(s / S::X_SLOTS - 1) & 1);
        RS_MARK(0, it, 2);
        issue(s);
        RS_MARK(0, it, 3);
      }
      cp_async_commit();
    }
    }
    cp_async_wait<0>();
  } else {
    // ---- consumers ----
    if constexpr (S::CONSUMER_REGS > 0) setmaxnreg_inc<S::CONSUMER_REGS>();
    const int cw = wg - 1, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int c_local = 64 * cw + 16 * warp + g;  // this thread's columns: c_local and c_local + 8
    const int64_t col_a = min(n0 + c_local, p.n - 1), col_b = min(n0 + c_local + 8, p.n - 1);
    const uint8_t* wa = p.w + col_a * p.ldw;
    const uint8_t* wb = p.w + col_b * p.ldw;
    const uint8_t* sa = p.w_scales + col_a * p.ldw_scales;
    const uint8_t* sb = p.w_scales + col_b * p.ldw_scales;
    // Byte t of two words side by side, then two such pairs into one word (byte permutes).
    const uint32_t pick_t = uint32_t(t | (4 + t) << 4), join = 0x5410u;
    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    constexpr int D = S::CODE_AHEAD;
    uint4 qa[D][2], qb[D][2];
    uint32_t ska[D][2], skb[D][2];
    // Stage it's codes (both blocks of both columns) and scales into set u; blocks past K (the last stage's second
    // when K / 32 is odd, and stages past the share) have zero codes and scale 127.
    auto load = [&](int u, int it) {
      const int st = st_begin + it;
      if constexpr (S::PROBE >= 6) {
        const int blk = 2 * st + (t >> 1);
        const bool ok = it < n_it && blk < nblk;
        const uint2 va = ok ? __ldg(reinterpret_cast<const uint2*>(wa + 32 * st + 8 * t)) : make_uint2(0, 0);
        const uint2 vb = ok ? __ldg(reinterpret_cast<const uint2*>(wb + 32 * st + 8 * t)) : make_uint2(0, 0);
        qa[u][0] = make_uint4(va.x, va.y, 0, 0);
        qb[u][0] = make_uint4(vb.x, vb.y, 0, 0);
        ska[u][0] = ok ? uint32_t(__ldg(sa + blk)) : 127u;
        skb[u][0] = ok ? uint32_t(__ldg(sb + blk)) : 127u;
        return;
      }
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const bool ok = it < n_it && 2 * st + b < nblk;
        qa[u][b] = ok ? __ldg(reinterpret_cast<const uint4*>(wa + 32 * st + 16 * b)) : make_uint4(0, 0, 0, 0);
        qb[u][b] = ok ? __ldg(reinterpret_cast<const uint4*>(wb + 32 * st + 16 * b)) : make_uint4(0, 0, 0, 0);
        ska[u][b] = ok ? uint32_t(__ldg(sa + 2 * st + b)) : 127u;
        skb[u][b] = ok ? uint32_t(__ldg(sb + 2 * st + b)) : 127u;
      }
    };
    // One block (16 bytes, chunks 4b..4b+3 of the stage) of one column: byte t of each word, decoded times its scale
    // over 2^10 into the pairs of chunks 4b..4b+3.
    auto decode_block = [&](const uint4& q, uint32_t sv, uint32_t* pr) {
      const bool in_window = sv - 77u <= 61u;
      bad |= !in_window && (((q.x | q.y | q.z | q.w) & 0x77777777u) != 0 || sv == 0xFFu);
      const uint32_t f = ((in_window ? sv : 127u) + 126u - kBf16ScaleOffset) * 0x00800080u;
      const uint32_t mine = __byte_perm(__byte_perm(q.x, q.y, pick_t), __byte_perm(q.z, q.w, pick_t), join);
      decode_e2m1x8_in_order(mine, f, pr);
    };
#pragma unroll
    for (int u = 0; u < D; ++u) load(u, u);
    const uint64_t desc_x0 = swizzled_tile_descriptor(smem + S::X_RING);
    for (int it0 = 0; it0 < n_it; it0 += D) {
#pragma unroll
      for (int u = 0; u < D; ++u) {
        const int it = it0 + u;
        if (it >= n_it) break;
        // pa[c] / pb[c]: the pair of chunk c (values 8c + 2t, 8c + 2t + 1) of columns c_local / c_local + 8.
        uint32_t pa[8], pb[8];
        RS_MARK(wg, it, 0);
        if constexpr (S::PROBE >= 6) {
          // qa[u][0].x / .y: bytes 8t..8t+7 of column a's stage (values 16t..16t+15, block t / 2), scale ska[u][0].
          const uint32_t s0 = ska[u][0], s1 = skb[u][0];
          const bool in0 = s0 - 77u <= 61u, in1 = s1 - 77u <= 61u;
          bad |= !in0 && (((qa[u][0].x | qa[u][0].y) & 0x77777777u) != 0 || s0 == 0xFFu);
          bad |= !in1 && (((qb[u][0].x | qb[u][0].y) & 0x77777777u) != 0 || s1 == 0xFFu);
          const uint32_t f0 = ((in0 ? s0 : 127u) + 126u - kBf16ScaleOffset) * 0x00800080u;
          const uint32_t f1 = ((in1 ? s1 : 127u) + 126u - kBf16ScaleOffset) * 0x00800080u;
          decode_e2m1x8_in_order(qa[u][0].x, f0, pa);
          decode_e2m1x8_in_order(qa[u][0].y, f0, pa + 4);
          decode_e2m1x8_in_order(qb[u][0].x, f1, pb);
          decode_e2m1x8_in_order(qb[u][0].y, f1, pb + 4);
        } else if constexpr (S::PROBE == 2) {
          const uint32_t* qq = reinterpret_cast<const uint32_t*>(&qa[u][0]);
          const uint32_t* rr = reinterpret_cast<const uint32_t*>(&qb[u][0]);
#pragma unroll
          for (int i = 0; i < 8; ++i) pa[i] = qq[i] & 0x3F003F00u, pb[i] = rr[i] & 0x3F003F00u;
        } else {
          decode_block(qa[u][0], ska[u][0], pa);
          decode_block(qa[u][1], ska[u][1], pa + 4);
          decode_block(qb[u][0], skb[u][0], pb);
          decode_block(qb[u][1], skb[u][1], pb + 4);
        }
        if constexpr (S::PROBE != 3) load(u, it + D);
        const int slot = it % S::X_SLOTS;
        RS_MARK(wg, it, 1);
        mbar_wait(full + slot, uint32_t(it / S::X_SLOTS) & 1);
        RS_MARK(wg, it, 2);
        if constexpr (S::PROBE == 5) fence_proxy_async();
        const uint64_t desc = desc_x0 + uint64_t(slot * (S::X_BYTES >> 4));
        // Turns (PROBE 8): warpgroup c issues its MMAs after warpgroup c - 1 has issued its own for the same stage
        // (warpgroup 0 after the last one's for the stage before), so that one decodes while another's MMAs run.
        if constexpr (S::PROBE == 8) {
          if (cw != 0 || it > 0) named_sync(1 + cw, 256);
        }
        if constexpr (S::PROBE == 1) {
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[j] += __uint_as_float(pa[j] ^ pb[j]) + float(desc & 1);
        } else {
          keep_registers(acc);
          wgmma_fence();
#pragma unroll
          for (int j = 0; j < 4; ++j)
            wgmma_rs_m64n128(acc, pa[2 * j], pb[2 * j], pa[2 * j + 1], pb[2 * j + 1], desc + 2 * j);
          wgmma_commit();
          if constexpr (S::PROBE == 8) {
            const int next = cw + 1 == S::CWG ? 0 : cw + 1;
            if (next != 0 || it + 1 < n_it) named_arrive(1 + next, 256);
          }
          wgmma_wait<0>();
          keep_registers(acc);
        }
        RS_MARK(wg, it, 3);
        mbar_arrive(empty + slot);
      }
    }
    // Partial sums (times 2^10, the scales' offset) to shared memory: D fragment i of lane (g, t) is column
    // c_local (+ 8 for i % 4 >= 2) and row 8 (i / 4) + 2 t + i % 2.
    const float total_scale = float(1u << kBf16ScaleOffset);
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        part[(8 * j + 2 * t + (e & 1)) * S::PART_PITCH + c_local + (e >= 2 ? 8 : 0)] = acc[4 * j + e] * total_scale;
      }
  }
  bad = __syncthreads_or(bad) != 0;
  __syncthreads();  // (racecheck does not take the reduction above as a barrier for the partial sums)
  if (bad) {
    // The exact path, as in w4a16_wgmma.
    const int b_begin = 2 * st_begin, b_end = min(2 * st_end, nblk);
    const int rows = int(min(int64_t(BT), p.m - m0));
    for (int item = tid; item < 2 * BN; item += S::THREADS) {
      const int c = item % BN, r_begin = item < BN ? 0 : BT / 2, r_end = min(r_begin + BT / 2, rows);
      if (n0 + c >= p.n) continue;
      const uint8_t* wr = p.w + (n0 + c) * p.ldw;
      for (int b = b_begin; b < b_end; ++b) {
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(wr + 16 * b));
        const uint32_t word[4] = {q.x, q.y, q.z, q.w};
        float w[32];
#pragma unroll
        for (int k = 0; k < 32; ++k) w[k] = e2m1_value((word[k >> 3] >> (4 * (k & 7))) & 0xFu);
        const float scale = e8m0_value(p.w_scales[(n0 + c) * p.ldw_scales + b]);
        for (int r = r_begin; r < r_end; ++r) {
          const uint4* xr = reinterpret_cast<const uint4*>(x + (m0 + r) * p.ldx + 32 * b);
          float sum = 0.f;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint4 v = __ldg(xr + i);
            const uint32_t xs[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              sum = fmaf(__uint_as_float(xs[e] << 16), w[8 * i + 2 * e], sum);
              sum = fmaf(__uint_as_float(xs[e] & 0xFFFF0000u), w[8 * i + 2 * e + 1], sum);
            }
          }
          float& total = part[r * S::PART_PITCH + c];
          total = b == b_begin ? sum * scale : total + sum * scale;
        }
      }
    }
  }
  __syncthreads();

  // The cluster's partial sums in rank order, as in w4a16_wgmma.
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
  if (splits > 1) cg::this_cluster().sync();
#else
  __trap();
#endif
}

template <typename OutT, typename S>
cudaError_t launch_wgmma_rs(const W4A16Problem& p, int splits, cudaStream_t stream) {
  const cudaError_t err = prepare_kernel<&w4a16_wgmma_rs<OutT, S>>(S::THREADS, S::SMEM);
  if (err != cudaSuccess) return err;
  return launch_tiles(w4a16_wgmma_rs<OutT, S>, p, S::BN, S::BT, S::THREADS, S::SMEM, splits, stream);
}

}  // namespace
}  // namespace mxkernels::core::cuda
