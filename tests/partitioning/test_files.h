// Small dataset files generated on the fly for the partitioning tests.
#ifndef LFL_TESTS_PARTITIONING_TEST_FILES_H_
#define LFL_TESTS_PARTITIONING_TEST_FILES_H_

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "partitioning/dataset.h"

namespace lfl::test {

// A fresh directory under the test temp dir.
inline std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "lfl_partitioning_XXXXXX";
  const char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

inline void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::vector<uint8_t> ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

inline void AppendBigEndian32(uint32_t value, std::vector<uint8_t>* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back((value >> shift) & 0xff);
}

// An IDX image file holding `images` (count*rows*cols bytes).
inline std::vector<uint8_t> IdxImages(const std::vector<uint8_t>& images, uint32_t rows,
                                      uint32_t cols) {
  std::vector<uint8_t> out;
  AppendBigEndian32(0x00000803, &out);
  AppendBigEndian32(static_cast<uint32_t>(images.size() / (rows * cols)), &out);
  AppendBigEndian32(rows, &out);
  AppendBigEndian32(cols, &out);
  out.insert(out.end(), images.begin(), images.end());
  return out;
}

inline std::vector<uint8_t> IdxLabels(const std::vector<int64_t>& labels) {
  std::vector<uint8_t> out;
  AppendBigEndian32(0x00000801, &out);
  AppendBigEndian32(static_cast<uint32_t>(labels.size()), &out);
  for (int64_t label : labels) out.push_back(static_cast<uint8_t>(label));
  return out;
}

// Pixel bytes that differ between images and positions (so a misplaced or
// transposed byte is noticed).
inline std::vector<uint8_t> PatternImages(int64_t count, int64_t image_bytes, int salt = 0) {
  std::vector<uint8_t> images(count * image_bytes);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<uint8_t>(i * 7 + salt * 13);
  return images;
}

// Labels 0, 1, ..., classes-1, 0, 1, ...
inline std::vector<int64_t> CyclingLabels(int64_t count, int64_t classes, int64_t offset = 0) {
  std::vector<int64_t> labels(count);
  for (int64_t i = 0; i < count; ++i) labels[i] = i % classes + offset;
  return labels;
}

// Writes {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] of `split` into dir.
inline void WriteMnistFiles(const std::string& dir, const std::string& prefix,
                            const std::string& stem, const Split& split, uint32_t rows,
                            uint32_t cols, bool gzip) {
  const std::string base = dir + "/" + prefix + stem;
  const std::string suffix = gzip ? ".gz" : "";
  const auto images = IdxImages(split.images, rows, cols);
  const auto labels = IdxLabels(split.labels);
  if (gzip) {
    WriteGzip(base + "-images-idx3-ubyte" + suffix, images);
    WriteGzip(base + "-labels-idx1-ubyte" + suffix, labels);
  } else {
    WriteFile(base + "-images-idx3-ubyte", images);
    WriteFile(base + "-labels-idx1-ubyte", labels);
  }
}

inline Split MakeSplit(int64_t count, int64_t image_bytes, int64_t classes, int salt = 0) {
  return Split{PatternImages(count, image_bytes, salt), CyclingLabels(count, classes)};
}

}  // namespace lfl::test

#endif  // LFL_TESTS_PARTITIONING_TEST_FILES_H_
