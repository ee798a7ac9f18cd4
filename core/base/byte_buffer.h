// ByteBuffer: a growable, contiguous byte buffer for building COPY data.
//
// Unlike std::vector<char>, growing it does not zero the new bytes, and the
// big-endian Put* helpers are inline so the per-field cost stays a few
// instructions. Not thread-safe; owned by one thread at a time (moved across
// queues between pipeline stages).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace nomnom {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(size_t capacity) { Reserve(capacity); }
  ~ByteBuffer() { std::free(data_); }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_, size_}; }
  void clear() { size_ = 0; }

  void Reserve(size_t capacity) {
    if (capacity <= capacity_) return;
    void* p = std::realloc(data_, capacity);
    if (p == nullptr) throw std::bad_alloc();
    data_ = static_cast<char*>(p);
    capacity_ = capacity;
  }
  // Makes room for n more bytes and returns where they go; call Commit(n) after.
  char* Grow(size_t n) {
    if (size_ + n > capacity_) Reserve(std::max(capacity_ * 2, size_ + n + 64));
    return data_ + size_;
  }
  void Commit(size_t n) { size_ += n; }
  // Shrinks the content to n bytes (n <= size()).
  void Truncate(size_t n) { size_ = n; }

  void Append(const void* p, size_t n) {
    char* dst = Grow(n);
    if (n != 0) std::memcpy(dst, p, n);
    size_ += n;
  }
  void Append(std::string_view s) { Append(s.data(), s.size()); }
  void PutU8(uint8_t v) {
    *Grow(1) = static_cast<char>(v);
    size_ += 1;
  }
  void PutU16(uint16_t v) {
    v = __builtin_bswap16(v);
    Append(&v, 2);
  }
  void PutU32(uint32_t v) {
    v = __builtin_bswap32(v);
    Append(&v, 4);
  }
  void PutU64(uint64_t v) {
    v = __builtin_bswap64(v);
    Append(&v, 8);
  }
  void PutI16(int16_t v) { PutU16(static_cast<uint16_t>(v)); }
  void PutI32(int32_t v) { PutU32(static_cast<uint32_t>(v)); }
  void PutI64(int64_t v) { PutU64(static_cast<uint64_t>(v)); }
  // Overwrites 4 bytes at offset with a big-endian int32 (for length back-patching).
  void PatchI32(size_t offset, int32_t v) {
    uint32_t be = __builtin_bswap32(static_cast<uint32_t>(v));
    std::memcpy(data_ + offset, &be, 4);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace nomnom
