// The MXFP4 weight layout that the CUDA W4A16 kernels read fastest (prepack_mxfp4_weight_cuda, docs/formats.md).
// A warp of the decode kernels takes 16 columns and a span of 4 blocks (128 K values) at a time, the wgmma kernel's
// producers 2 blocks of each of its columns per stage; here both are contiguous, and each address steps by a constant
// from one span or stage to the next. In plain [N, K/2] rows a warp's span is 16 pieces of 64 bytes, K/2 bytes apart.
//
// Columns go in tiles of 16 (N a multiple of 16). A tile holds its 16 columns' nb = K/32 blocks: first the codes, pair
// of blocks by pair of blocks, each pair 16 rows (the columns) of 32 bytes (the two blocks' 16 code bytes side by
// side); then the scales, likewise 16 rows of 2 bytes per pair. Where nb is odd the last "pair" has one block: rows of
// 16 code bytes and of 1 scale byte. Those are 272 nb bytes; zeros then fill the tile up to a whole number of 128-byte
// lines, L = ceil(272 nb / 128) of them: the shape [N/16, L, 128]. So every tile starts a line, and a warp's 512 code
// bytes of a pair of blocks are 4 whole lines, not parts of 5 (unpadded, 272 nb bytes apart, tiles started mid-line
// unless nb is a multiple of 8, 3 in 4 of them at K=2880; on an H100 at N=5760, K=2880 that cost M=1 about 0.08 us
// of 5.8, bench/RESULTS.md, twenty-fifth pass). Code offsets are multiples of 16. Torch-free; the functions are also compiled
// for the device.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define MXKERNELS_HOST_DEVICE __host__ __device__
#else
#define MXKERNELS_HOST_DEVICE
#endif

namespace mxkernels::core {

constexpr int64_t kMxfp4CudaTileColumns = 16;
// Bytes per block of a tile: 16 columns of 16 code bytes and one scale byte.
constexpr int64_t kMxfp4CudaTileBlockBytes = 16 * 17;
// One pair of blocks of a tile: its codes, and its scales.
constexpr int64_t kMxfp4CudaPairCodeBytes = 16 * 32;
constexpr int64_t kMxfp4CudaPairScaleBytes = 16 * 2;

// A tile is a whole number of these.
constexpr int64_t kMxfp4CudaLineBytes = 128;

// The lines of a tile (L), and its bytes, for nb blocks a column.
MXKERNELS_HOST_DEVICE inline int64_t mxfp4_cuda_tile_lines(int64_t nb) {
  return (nb * kMxfp4CudaTileBlockBytes + kMxfp4CudaLineBytes - 1) / kMxfp4CudaLineBytes;
}
MXKERNELS_HOST_DEVICE inline int64_t mxfp4_cuda_tile_bytes(int64_t nb) {
  return mxfp4_cuda_tile_lines(nb) * kMxfp4CudaLineBytes;
}

// Where block `blk` of column `col` starts (its 16 code bytes), for nb blocks a column.
MXKERNELS_HOST_DEVICE inline int64_t mxfp4_cuda_code_offset(int64_t col, int64_t blk, int64_t nb) {
  const int64_t tile = col / kMxfp4CudaTileColumns * mxfp4_cuda_tile_bytes(nb), row = col % kMxfp4CudaTileColumns;
  const int64_t width = blk / 2 * 2 + 1 < nb ? 2 : 1;  // blocks in this pair
  return tile + blk / 2 * kMxfp4CudaPairCodeBytes + row * width * 16 + blk % 2 * 16;
}

// Where the scale of block `blk` of column `col` lies.
MXKERNELS_HOST_DEVICE inline int64_t mxfp4_cuda_scale_offset(int64_t col, int64_t blk, int64_t nb) {
  const int64_t tile = col / kMxfp4CudaTileColumns * mxfp4_cuda_tile_bytes(nb), row = col % kMxfp4CudaTileColumns;
  const int64_t width = blk / 2 * 2 + 1 < nb ? 2 : 1;
  return tile + nb * 256 + blk / 2 * kMxfp4CudaPairScaleBytes + row * width + blk % 2;
}

// The scalar packer: columns [col_begin, col_end) (multiples of 16) of codes [n][k/2] (rows ld_codes bytes apart) and
// scales [n][k/32] (rows ld_scales apart) into `out`, the whole layout's buffer, the tiles' padding zeroed.
inline void pack_mxfp4_weight_cuda_layout(const uint8_t* codes, int64_t ld_codes, const uint8_t* scales,
                                          int64_t ld_scales, int64_t k, int64_t col_begin, int64_t col_end,
                                          uint8_t* out) {
  const int64_t nb = k / 32;
  for (int64_t col = col_begin; col < col_end; ++col) {
    for (int64_t blk = 0; blk < nb; ++blk) {
      const uint8_t* src = codes + col * ld_codes + blk * 16;
      uint8_t* dst = out + mxfp4_cuda_code_offset(col, blk, nb);
      for (int i = 0; i < 16; ++i) dst[i] = src[i];
      out[mxfp4_cuda_scale_offset(col, blk, nb)] = scales[col * ld_scales + blk];
    }
  }
  const int64_t tile_bytes = mxfp4_cuda_tile_bytes(nb);
  for (int64_t tile = col_begin / kMxfp4CudaTileColumns; tile < col_end / kMxfp4CudaTileColumns; ++tile) {
    for (int64_t i = nb * kMxfp4CudaTileBlockBytes; i < tile_bytes; ++i) out[tile * tile_bytes + i] = 0;
  }
}

}  // namespace mxkernels::core
