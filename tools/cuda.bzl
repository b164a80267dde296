"""cuda_library: compiles .cu files with nvcc (for sm_90, the GPUs we target) into a cc_library.

Each .cu file becomes one position-independent object through a genrule that calls nvcc; the objects are linked
like any other C++ object. With --config=nocuda (no toolkit on the machine) the library is empty and
RESBM_HAVE_CUDA is not defined, so callers compile their CPU paths only.
"""

load("@cuda//:defs.bzl", "CUDA_PATH")

NVCC_FLAGS = [
    "-std=c++17",
    "-O3",
    "--use_fast_math",
    "-gencode=arch=compute_90,code=sm_90",
    "-Xcompiler=-fPIC",
    "-lineinfo",
]

def cuda_library(name, srcs, hdrs = [], deps = [], visibility = None):
    objs = []
    for src in srcs:
        obj = "_objs/%s/%s.pic.o" % (name, src.replace("/", "_").replace(".cu", ""))
        native.genrule(
            name = "%s_%s_nvcc" % (name, src.replace("/", "_").replace(".", "_")),
            srcs = [src] + hdrs + [d + "_hdrs" for d in []],
            outs = [obj],
            # -I. is the execution root, where every header of the workspace is visible (builds are unsandboxed).
            cmd = "%s/bin/nvcc %s -I. -I$(GENDIR) -isystem %s/include -c $(location %s) -o $@" % (
                CUDA_PATH,
                " ".join(NVCC_FLAGS),
                CUDA_PATH,
                src,
            ),
            tags = ["manual", "no-sandbox"],
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = select({
            "//tools:cuda_off": [],
            "//conditions:default": objs,
        }),
        hdrs = hdrs,
        deps = deps + select({
            "//tools:cuda_off": [],
            "//conditions:default": ["@cuda//:cudart", "@cuda//:cublas"],
        }),
        defines = select({
            "//tools:cuda_off": [],
            "//conditions:default": ["RESBM_HAVE_CUDA=1"],
        }),
        visibility = visibility,
    )
