"""emulated_cuda_test: a CUDA kernel file's own source run on the CPU by cuda_emulation.h, against the CPU twins with
the GPU test's own bounds (the GPU test source, filtered to the kernels that file implements)."""

load("@rules_cc//cc:defs.bzl", "cc_test")

# The rewrite of a .cu file or device header into plain C++ over cuda_emulation.h (included first): the CUDA
# headers become the emulation's, the device headers their rewritten copies (emulated_cuda_headers in BUILD), cuBLAS
# a host reference (emulated_blas.h), CUB's sort a host sort (emulated_cub.h), launches `k<<<cfg>>>(` become
# `emulated_launch(emulated_config(cfg), [=](auto... a) { k(a...); }, ` (a lambda: the kernel's template arguments
# are deduced from the call, as in CUDA; a launch whose `>>>` is on a later line is joined first) and
# `__shared__ T name[n];` a reference into the block's shared memory. The kernel's name must be on the line of its
# `<<<`; the command fails if any launch, __shared__ or CUDA header is left.
EMULATE_CUDA_SED = (
    "-e '/<<</{' -e ':join' -e '/>>>/!{N;s/\\n[[:space:]]*/ /;b join' -e '}' -e '}' " +
    "-e '1i #include \"tests/kernels/cuda/cuda_emulation.h\"  // emulated_cuda_test.bzl: rewritten for the CPU' " +
    "-e 's%#include <(cuda_runtime|cuda_bf16)\\.h>%#include \"tests/kernels/cuda/cuda_emulation.h\"%' " +
    "-e 's%#include <cub/device/device_radix_sort\\.cuh>%#include \"tests/kernels/cuda/emulated_cub.h\"%' " +
    "-e '/#include (<mma\\.h>|\"kernels\\/cuda\\/cuda_check\\.h\")/d' " +
    "-e 's%#include \"kernels/cuda/(common|bf16_vector|column_sum|adamw|token_sort)\\.cuh\"%" +
    "#include \"tests/kernels/cuda/emulated/\\1.h\"%' " +
    "-e 's%#include \"kernels/cuda/blas\\.h\"%#include \"tests/kernels/cuda/emulated_blas.h\"%' " +
    "-e 's/extern __shared__ __align__\\(128\\) char smem\\[\\];/char* smem = emulated_shared_memory();/' " +
    "-e 's/__shared__ ([A-Za-z_][A-Za-z_0-9:]*) ([A-Za-z_][A-Za-z_0-9]*)\\[([^]]*)\\];/" +
    "auto\\& \\2 = emulated_static_shared<\\1[\\3]>();/' " +
    "-e 's/([A-Za-z_][A-Za-z_0-9]*(<[^<>]*>)?)<<<(.*)>>>\\(/" +
    "emulated_launch(emulated_config(\\3), [=](auto... a) { \\1(a...); }, /'"
)

# Mutation checks by hand: a file name ("layernorm.cu", "common.cuh") -> sed -E expressions applied to that source
# before the rewrite, e.g. {"layernorm.cu": "-e 's/min\\(N, r0/min(N - 1, r0/'"}, to plant a bug and see the
# emulated test catch it. Empty in the repository. Tried (November 2026), caught unless marked:
#   adamw.cu        grid-stride bound i <= n (guard zone written)
#   bf16.cu         stochastic rounding bound n - 1; AdamW bf16 stride blockDim.x instead of gridDim.x * blockDim.x
#   bf16_crossentropy.cu  padded-column mask col <= V; the target's logit read from the next column
#   bf16_elementwise.cu   slice pack index not scaled by P; map kernel one pack short
#   bf16_embedding.cu     wte backward column stride blockDim.x instead of blockDim.x * P
#   bf16_layernorm.cu     row guard row > N (guard zone written); one chunk of dweight partials fewer launched
#   codes.cu        int8 absmax not reduced over the warp; bf16 NaN test removed (caught through the low-payload NaN
#                   codes_adamw_test now has: a quiet NaN rounds to the same bits either way)
#   crossentropy.cu forward mask j <= V; MISSED: backward mask j > V (equivalent: padded probabilities are 0)
#   elementwise.cu  GRID_STRIDE bound i <= n (guard zone written); slice row stride K instead of C
#   embedding.cu    group-start test removed; group end one short at the end of the sorted tokens
#   layernorm.cu    variance not reduced over the warp; the dweight/dbias partials' last row dropped
#   reductions.cu   the last partial dropped
#   attention.cu    softmax diagonal masked (s < t); backward dot product not reduced over the warp
#   common.cuh      block_sum/block_max's second __syncthreads removed: caught by bf16_crossentropy (block_max then
#                   block_sum on one array; the fp32 files use two arrays or one call: no race to see);
#                   block_sum reading lane <= num_warps: caught by reductions, crossentropy; only lane 0 at
#                   block_sum's first __syncthreads: reported as a deadlock (where each thread waits), no hang
#   column_sum.cuh  finish skips the first chunk (bf16_layernorm); partials drop each chunk's last row (matmul)
#   matmul.cu       dbias summed over N - 1 rows;  bf16_vector.cuh  fp32 store_pack stores x[6] in lane 7
#   bf16_flash_attention.cu  either __syncthreads around the K/V tile load; causal mask key < row in the tile max;
#                   any one of the __syncwarps after a WMMA store or after the lanes write P / rescale O (lines 181,
#                   205, 261, 346, 355, 402, 410); MISSED alone but caught together: accumulate_rows' leading and
#                   trailing __syncwarp (each covers for the other across calls)
PLANTED_BUGS = {}

def emulate_cuda_cmd(source):
    """The genrule command that rewrites `source` (a file name in //kernels/cuda) from $< into $@ and checks it."""
    planted = PLANTED_BUGS.get(source, "")
    return "sed -E " + planted + " " + EMULATE_CUDA_SED + " $< > $@ && " + EMULATE_CUDA_CHECK + " $@"

# Fails the rule when the rewrite missed something (a launch split across lines, an unusual __shared__).
EMULATE_CUDA_CHECK = "! grep -n '<<<\\|>>>\\|__shared__\\|cuda_runtime\\|cuda_check\\|cublas\\|<mma.h>\\|<cub/'"

def emulated_cuda_test(name, cu, test_src, gtest_filter, small_cases = False, size = "small", deps = []):
    """The kernels of //kernels/cuda:<cu> emulated on the CPU, tested by test_src's tests named by gtest_filter.

    The tests run with cuda_test_util_host (host memory stands in for device memory, with guard zones), all their
    cases (the large ones reach the grid-stride rounds and multi-chunk reductions), or with small_cases their small,
    odd ones only (RESBM_TEST_SMALL=1), where the large ones would take minutes. deps: what test_src needs besides
    the CPU kernels, gtest and the CUDA declarations (kernels.cuh, bf16.cuh).
    """
    src = name + "_src"
    native.genrule(
        name = src,
        testonly = True,
        srcs = ["//kernels/cuda:" + cu],
        outs = [name + "_" + cu.replace(".cu", ".cc")],
        cmd = emulate_cuda_cmd(cu),
    )
    cc_test(
        name = name,
        size = size,
        srcs = [test_src, ":" + src],
        args = ["--gtest_filter=" + gtest_filter],
        copts = ["-Wno-unknown-pragmas"],  # the kernels' #pragma unroll
        env = {"RESBM_TEST_SMALL": "1"} if small_cases else {},
        deps = [
            ":cuda_test_util_host",
            ":emulated_cuda_headers",
            "//kernels:int8_code",  # codes.cu's int8 rules (plain C++)
            "//kernels/cpu:kernels",
            "//kernels/cuda:bf16_declarations",
            "//third_party:gtest_main",
        ] + deps,
    )
