"""cuda_library: compiles .cu files with nvcc (for sm_90, the Hopper GPUs we target) into a cc_library.

Each .cu file becomes one position-independent object through a genrule that calls nvcc (whole-program mode: no
relocatable device code, so no device-link step). The genrule writes the same object under two names, X.o and
X.pic.o, because Bazel picks .o files for static links (cc_binary in opt) and .pic.o files for shared ones (cc_test
links dynamically); both are built with -fPIC so either is valid everywhere. With --config=nocuda (no toolkit on the
machine) the library keeps its headers, compiles only `nocuda_srcs` (stubs) and does not define RESBM_HAVE_CUDA, so
callers compile their CPU paths only and still link.

No --use_fast_math: the kernels are compared against the CPU twins at 1e-5 and fast math would swap expf, tanhf and
divisions for approximations and flush denormals. Kernels that want an intrinsic ask for it by name.
"""

load("@cuda//:defs.bzl", "CUDA_PATH")

NVCC_FLAGS = [
    "-std=c++17",
    "-O3",
    "-gencode=arch=compute_90,code=sm_90",
    "-Xcompiler=-fPIC,-O3",
    "-lineinfo",
    "--expt-relaxed-constexpr",
    "-Werror=all-warnings",
]

def cuda_library(name, srcs, hdrs = [], nvcc_hdrs = [], deps = [], nvcc_deps = [], nocuda_srcs = [], visibility = None):
    """A cc_library whose srcs are .cu files.

    Args:
      name: the library.
      srcs: .cu files, each compiled on its own.
      hdrs: headers of the library (plain C++ ones that users include, and .cuh ones the .cu files share).
      nvcc_hdrs: headers from other packages that the .cu files include (labels), so that editing them recompiles.
      deps: cc deps of the library.
      nvcc_deps: extra link deps when CUDA is on (e.g. "@cuda//:nccl").
      nocuda_srcs: plain C++ sources compiled instead of the .cu files under --config=nocuda (stubs that abort
        with a message, so that code declaring CUDA calls still links).
      visibility: as usual.
    """
    objs = []
    for src in srcs:
        stem = "_objs/%s/%s" % (name, src.replace("/", "_").replace(".cu", ""))
        native.genrule(
            name = "%s_%s_nvcc" % (name, src.replace("/", "_").replace(".", "_")),
            srcs = [src] + hdrs + nvcc_hdrs,
            outs = [stem + ".pic.o"],
            # -I. is the execution root, where the workspace's sources are (the build is unsandboxed, so headers of
            # dependencies are found even when nvcc_hdrs omits one; listing them only adds rebuild tracking).
            cmd = "%s/bin/nvcc %s -I. -I$(GENDIR) -isystem %s/include -c $(location %s) -o $@" % (
                CUDA_PATH,
                " ".join(NVCC_FLAGS),
                CUDA_PATH,
                src,
            ),
            message = "nvcc %s" % src,
            tags = ["manual", "no-sandbox"],
        )
        objs.append(stem + ".pic.o")
    native.cc_library(
        name = name,
        srcs = select({
            "//tools:cuda_off": nocuda_srcs,
            "//conditions:default": objs,
        }),
        hdrs = hdrs,
        deps = deps + select({
            "//tools:cuda_off": [],
            "//conditions:default": ["@cuda//:cudart", "@cuda//:cublas"] + nvcc_deps,
        }),
        defines = select({
            "//tools:cuda_off": [],
            "//conditions:default": ["RESBM_HAVE_CUDA=1"],
        }),
        visibility = visibility,
    )
