// Raw stores for building COPY tuples through a local cursor: the caller
// reserves room once (ByteBuffer::Grow) and writes each field with these,
// instead of ByteBuffer::Put* calls that each re-check the capacity.
// Pure functions; the caller guarantees the room.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace nomnom {

// Stores v big-endian at w and returns the end.
template <typename T>
inline char* PutBigEndian(char* w, T v) {
  if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
  if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
  if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
  std::memcpy(w, &v, sizeof(T));
  return w + sizeof(T);
}

// Copies n bytes, N <= n <= 2N, as two N-byte moves that overlap in the
// middle: fixed-size moves compile to a few register loads and stores.
template <size_t N>
inline void CopyEnds(char* w, const char* src, size_t n) {
  char head[N], tail[N];
  std::memcpy(head, src, N);
  std::memcpy(tail, src + n - N, N);
  std::memcpy(w, head, N);
  std::memcpy(w + n - N, tail, N);
}

// Copies s to w and returns the end. Short values (most fields) take
// CopyEnds, which never reads outside s, instead of a call to memcpy for a
// few bytes. CopyBytesInline is always inlined (DelimitedEncoder's fused
// scanner, where GCC left it a call); CopyBytes is left to the compiler.
[[gnu::always_inline]] inline char* CopyBytesInline(char* w, std::string_view s) {
  const char* src = s.data();
  const size_t n = s.size();
  if (n > 64) {
    std::memcpy(w, src, n);
  } else if (n > 32) {
    CopyEnds<32>(w, src, n);
  } else if (n > 16) {
    CopyEnds<16>(w, src, n);
  } else if (n >= 8) {
    CopyEnds<8>(w, src, n);
  } else if (n >= 4) {
    CopyEnds<4>(w, src, n);
  } else if (n > 0) {
    w[0] = src[0];
    w[n / 2] = src[n / 2];
    w[n - 1] = src[n - 1];
  }
  return w + n;
}

inline char* CopyBytes(char* w, std::string_view s) { return CopyBytesInline(w, s); }

}  // namespace nomnom
