// Arena, Tensor views and ParamStore layout.
#include <cstdint>
#include <cstring>

#include "engine/memory.h"
#include "engine/params.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"

namespace engine {
namespace {

TEST(Arena, AlignedZeroedAndBumping) {
  Arena arena("test", 4096);
  Tensor a = arena.alloc({3, 5});                  // 60 bytes
  Tensor b = arena.alloc({7}, DType::i32);         // next 64-byte boundary
  Tensor c = arena.alloc({2, 2, 2, 3}, DType::i8);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.data) % 64, 0u);
  EXPECT_EQ(static_cast<char*>(b.data) - static_cast<char*>(a.data), 64);
  EXPECT_EQ(arena.used(), 128u + 24u);
  for (int64_t i = 0; i < a.numel(); i++) EXPECT_EQ(a.f32()[i], 0.0f);  // zeroed at creation
  for (int64_t i = 0; i < b.numel(); i++) EXPECT_EQ(b.i32()[i], 0);
  a.f32()[0] = 5.0f;
  arena.zero_used();
  EXPECT_EQ(a.f32()[0], 0.0f);
  a.f32()[0] = 7.0f;
  arena.reset();
  EXPECT_EQ(arena.used(), 0u);
  EXPECT_EQ(arena.peak(), 128u + 24u);
  Tensor again = arena.alloc({3, 5});
  EXPECT_EQ(again.data, a.data);         // the memory is reused...
  EXPECT_EQ(again.f32()[0], 7.0f);       // ...and not cleared by reset()
  EXPECT_EQ(again.device, Device::cpu);
}

TEST(Arena, FillsExactlyToCapacity) {
  Arena arena("exact", 256);
  arena.alloc({64});  // 256 bytes
  EXPECT_EQ(arena.used(), 256u);
}

TEST(ArenaDeathTest, OverflowNamesArenaCapacityAndRequest) {
  EXPECT_DEATH(
      {
        Arena arena("activations", 1000);
        arena.alloc({200});  // 800 bytes
        arena.alloc({100});  // 400 more: over
      },
      "arena 'activations' is out of memory: capacity 1000 bytes, 800 in use, request of 400 bytes for "
      "f32\\[100\\]@cpu");
}

TEST(ArenaDeathTest, CudaArenaWithoutCudaIsAClearError) {
#ifdef RESBM_HAVE_CUDA
  GTEST_SKIP() << "built with CUDA";
#else
  EXPECT_DEATH({ Arena arena("gpu", 1024, Device::cuda); }, "built without CUDA");
#endif
}

TEST(Tensor, ViewsAndDescriptions) {
  Arena arena("t", 1024);
  Tensor t = arena.alloc({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.describe(), "f32[2,3,4]@cpu");
  Tensor v = t.view({6, 4});
  EXPECT_EQ(v.data, t.data);
  EXPECT_EQ(v.describe(), "f32[6,4]@cpu");
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::i8), 1u);
  EXPECT_STREQ(dtype_name(DType::u16), "u16");
  EXPECT_STREQ(device_name(Device::cuda), "cuda");
  EXPECT_FALSE(Tensor{}.defined());
}

TEST(TensorDeathTest, WrongDtypeAndBadViewAbort) {
  Arena arena("t", 1024);
  Tensor t = arena.alloc({4}, DType::i32);
  EXPECT_DEATH(t.f32(), "accessed as f32");
  EXPECT_DEATH(t.view({3}), "element counts differ");
}

TEST(ParamStore, LayoutOffsetsAndFlatViews) {
  ParamStore store;
  const int a = store.declare("a", {3, 5}, ParamKind::matrix);   // 15 floats -> padded to 16
  const int b = store.declare("b", {7}, ParamKind::vector);      // 7 -> 16
  const int c = store.declare("c", {4, 8}, ParamKind::embedding);  // 32
  store.allocate();
  EXPECT_EQ(store.num_parameters(), 15u + 7u + 32u);
  EXPECT_EQ(store.num_elements(), 16u + 16u + 32u);
  EXPECT_EQ(store.offset(a), 0);
  EXPECT_EQ(store.offset(b), 16);
  EXPECT_EQ(store.offset(c), 32);
  EXPECT_EQ(store.find("b"), b);
  EXPECT_EQ(store.find("nope"), -1);
  EXPECT_EQ(store.param(c).kind, ParamKind::embedding);
  EXPECT_EQ(store.var(a).value.describe(), "f32[3,5]@cpu");
  Tensor all = store.all_values();
  EXPECT_EQ(all.numel(), 64);
  EXPECT_EQ(store.var(c).value.f32(), all.f32() + 32);
  EXPECT_EQ(store.var(c).grad.f32(), store.all_grads().f32() + 32);
  for (const Param& p : store.params()) EXPECT_EQ(reinterpret_cast<uintptr_t>(p.var.value.data) % 64, 0u);
  for (int64_t i = 0; i < all.numel(); i++) EXPECT_EQ(all.f32()[i], 0.0f);
  store.var(b).grad.f32()[3] = 2.0f;
  store.zero_grads();
  EXPECT_EQ(store.var(b).grad.f32()[3], 0.0f);
}

TEST(ParamStoreDeathTest, DeclareAfterAllocateAndDuplicates) {
  EXPECT_DEATH(
      {
        ParamStore store;
        store.declare("x", {2}, ParamKind::vector);
        store.declare("x", {2}, ParamKind::vector);
      },
      "declared twice");
  EXPECT_DEATH(
      {
        ParamStore store;
        store.declare("x", {2}, ParamKind::vector);
        store.allocate();
        store.declare("y", {2}, ParamKind::vector);
      },
      "after allocate");
}

}  // namespace
}  // namespace engine
