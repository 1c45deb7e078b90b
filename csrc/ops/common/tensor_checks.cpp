#include "ops/common/tensor_checks.h"

#include <c10/util/Exception.h>

namespace mxkernels::ops {

std::string dtype_list(std::initializer_list<at::ScalarType> dtypes) {
  std::string s;
  size_t i = 0;
  for (at::ScalarType t : dtypes) {
    if (i > 0) s += (i + 1 == dtypes.size()) ? " or " : ", ";
    s += c10::toString(t);
    ++i;
  }
  return s;
}

bool dtype_in(at::ScalarType t, std::initializer_list<at::ScalarType> dtypes) {
  for (at::ScalarType d : dtypes)
    if (d == t) return true;
  return false;
}

core::FloatType core_float_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return core::FloatType::f32;
    case at::kBFloat16: return core::FloatType::bf16;
    case at::kHalf: return core::FloatType::f16;
    default: TORCH_INTERNAL_ASSERT(false, "mxkernels: no core float type for ", t);
  }
}

std::string sym_str(const c10::SymInt& s) {
  if (auto v = s.maybe_as_int()) return std::to_string(*v);
  return s.toSymNodeImplUnowned()->str();
}

int64_t concrete_int(const c10::SymInt& s, const char* what) {
  const auto v = s.maybe_as_int();
  TORCH_CHECK(v.has_value(), "mxkernels: ", what, " must be a concrete integer here, got ", sym_str(s));
  return *v;
}

std::string sizes_string(c10::SymIntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + sym_str(sizes[i]);
  return out + "]";
}

void check_sizes_equal(const char* op, const char* name, const at::Tensor& t, const std::vector<c10::SymInt>& want) {
  TORCH_CHECK(t.dim() == int64_t(want.size()), op, ": ", name, " must have shape ", sizes_string(want), ", got ",
              sizes_string(t.sym_sizes()));
  for (size_t d = 0; d < want.size(); ++d) {
    TORCH_SYM_CHECK(t.sym_size(int64_t(d)).sym_eq(want[d]), op, ": ", name, " must have shape ",
                    sizes_string(want), ", got ", sizes_string(t.sym_sizes()));
  }
}

void check_same_device(const char* op, std::initializer_list<std::pair<const char*, const at::Tensor*>> tensors) {
  const auto& first = *tensors.begin();
  for (const auto& t : tensors) {
    TORCH_CHECK(t.second->device() == first.second->device(), op, ": all tensors must be on one device, got ",
                first.first, " on ", first.second->device(), " and ", t.first, " on ", t.second->device());
  }
}

RowOffsets::RowOffsets(const at::Tensor& t) {
  const int64_t lead = t.dim() - 1;
  for (int64_t d = 0; d < lead; ++d) {
    sizes_.push_back(t.size(d));
    strides_.push_back(t.stride(d));
    rows_ *= t.size(d);
  }
  // Equally spaced rows when every leading dim nests in the next one (size-1 dims do not matter).
  int64_t expected = -1;
  for (int64_t d = lead - 1; d >= 0; --d) {
    if (sizes_[d] == 1) continue;
    if (expected == -1) {
      row_stride_ = strides_[d];
    } else if (strides_[d] != expected) {
      uniform_ = false;
      break;
    }
    expected = strides_[d] * sizes_[d];
  }
}

int64_t RowOffsets::offset(int64_t row) const {
  if (uniform_) return row * row_stride_;
  int64_t off = 0;
  for (int64_t d = int64_t(sizes_.size()) - 1; d >= 0; --d) {
    off += (row % sizes_[d]) * strides_[d];
    row /= sizes_[d];
  }
  return off;
}

}  // namespace mxkernels::ops
