"""A repository rule that exposes the local CUDA toolkit (/usr/local/cuda, or $CUDA_PATH) to Bazel.

With a toolkit it links include/ and lib64/ into the repository and defines cudart, cublas, cublasLt and nccl as
imported libraries. Without one it defines the same targets empty, so that the CPU engine still builds; the
launcher (tools/bazel) then builds with --config=nocuda and says so.
"""

def _cuda_configure_impl(ctx):
    cuda_path = ctx.os.environ.get("CUDA_PATH", "/usr/local/cuda")
    have_cuda = ctx.path(cuda_path + "/bin/nvcc").exists and ctx.path(cuda_path + "/include/cuda_runtime.h").exists
    if have_cuda:
        ctx.symlink(cuda_path + "/include", "include")
        ctx.symlink(cuda_path + "/lib64", "lib64")
        ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(name = "headers", hdrs = glob(["include/**/*.h", "include/**/*.hpp", "include/**/*.inl"]), includes = ["include"])
cc_library(name = "cudart", deps = [":headers"], linkopts = ["-L{path}/lib64", "-Wl,-rpath,{path}/lib64", "-lcudart"])
cc_library(name = "cublas", deps = [":cudart"], linkopts = ["-lcublasLt", "-lcublas"])
cc_library(name = "nccl", deps = [":cudart"], linkopts = ["-lnccl"])
""".format(path = cuda_path))
    else:
        ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

# No CUDA toolkit was found at {path}: these stand-ins are empty. Build with --config=nocuda.
cc_library(name = "headers")
cc_library(name = "cudart")
cc_library(name = "cublas")
cc_library(name = "nccl")
""".format(path = cuda_path))
    ctx.file("defs.bzl", "CUDA_PATH = \"%s\"\nHAVE_CUDA = %s\n" % (cuda_path, "True" if have_cuda else "False"))

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_PATH"],
    local = True,
)
