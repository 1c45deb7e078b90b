import warnings

import pytest
import torch

import mxkernels


@pytest.fixture(params=mxkernels.supported_cpu_isas())
def isa(request):
    """Runs the test once per CPU level this machine supports, restoring the selection afterwards."""
    before = mxkernels.cpu_isa()
    mxkernels.set_cpu_isa(request.param)
    yield request.param
    mxkernels.set_cpu_isa(before)


@pytest.fixture(scope="session")
def torchao_to_mx():
    """torchao's reference quantizer; its import prints warnings about its optional GPU extensions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats.config import ScaleCalculationMode
        from torchao.prototype.mx_formats.mx_tensor import to_mx

    def run(x, mode):
        scale, data = to_mx(x, torch.float4_e2m1fn_x2, 32, ScaleCalculationMode(mode))
        return data.view(torch.uint8), scale.view(torch.uint8)

    return run
