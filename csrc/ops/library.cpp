// The mxkernels operator namespace. Each op family adds its schemas with TORCH_LIBRARY_FRAGMENT in its own
// folder (csrc/ops/<family>/schema.cpp).
#include <torch/library.h>

#include "mxkernels/ops.h"

TORCH_LIBRARY(mxkernels, m) {}

namespace mxkernels::detail {
// Referenced by every function of <mxkernels/ops.h>, so a program that calls them keeps this library
// linked (and its registrations run) even under --as-needed.
int ops_library_anchor() { return 1; }
}  // namespace mxkernels::detail
