// Helpers shared by the op families' check functions. Everything here works on SymInts so that the real
// kernels and the Meta kernels run the very same checks.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/SymBool.h>
#include <c10/core/SymInt.h>

#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "core/float_types.h"

namespace mxkernels::ops {

// "float32, bfloat16 or float16"
std::string dtype_list(std::initializer_list<at::ScalarType> dtypes);

bool dtype_in(at::ScalarType t, std::initializer_list<at::ScalarType> dtypes);

// float32 / bfloat16 / float16 to the core's type; anything else is a bug of the caller's check.
core::FloatType core_float_type(at::ScalarType t);

// A SymInt as text for error messages. Messages never stream a SymInt directly: with torch 2.11 (CUDA
// build, seen on the device machine) `TORCH_CHECK(false, "got ", sym_int)` segfaults, even in a bare
// extension.
std::string sym_str(const c10::SymInt& s);

// The value of a SymInt that a real kernel needs as a number (SymInt::expect_int() would stream it on failure).
int64_t concrete_int(const c10::SymInt& s, const char* what);

// "[4, 32]" for concrete and symbolic sizes (or strides) alike.
std::string sizes_string(c10::SymIntArrayRef sizes);

// Checks that t has exactly the sizes `want`; the error names the tensor and both shapes.
void check_sizes_equal(const char* op, const char* name, const at::Tensor& t, const std::vector<c10::SymInt>& want);

// Checks that the tensors are on one device; names them in the error.
void check_same_device(const char* op, std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors);

// Element offsets of the rows of a tensor whose last dim is contiguous: row r of the flattened leading
// dims starts at offset(r). Built from concrete sizes (real kernels only).
class RowOffsets {
 public:
  explicit RowOffsets(const at::Tensor& t);
  int64_t rows() const { return rows_; }
  int64_t offset(int64_t row) const;

 private:
  std::vector<int64_t> sizes_, strides_;  // leading dims, innermost last
  int64_t rows_ = 1;
  bool uniform_ = true;  // rows equally spaced: offset = row * row_stride_
  int64_t row_stride_ = 0;
};

}  // namespace mxkernels::ops
