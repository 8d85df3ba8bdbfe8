#include "archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

namespace paddock::runtime {
namespace {

namespace fs = std::filesystem;

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;

// libarchive's message for the last error; it has none when a callback failed.
std::string ErrorOf(archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "write failed";
}

struct WriteState {
  std::ostream* out;
  std::int64_t written = 0;
  std::int64_t max = 0;  // 0: no limit
  bool over = false;
};

la_ssize_t WriteToStream(archive*, void* client, const void* buffer, size_t length) {
  auto* state = static_cast<WriteState*>(client);
  state->written += static_cast<std::int64_t>(length);
  if (state->max > 0 && state->written > state->max) {
    state->over = true;
    return -1;
  }
  state->out->write(static_cast<const char*>(buffer), static_cast<std::streamsize>(length));
  return *state->out ? static_cast<la_ssize_t>(length) : -1;
}

struct ReadState {
  std::istream* in;
  char buffer[64 * 1024];
};

la_ssize_t ReadFromStream(archive*, void* client, const void** buffer) {
  auto* state = static_cast<ReadState*>(client);
  state->in->read(state->buffer, sizeof state->buffer);
  *buffer = state->buffer;
  return static_cast<la_ssize_t>(state->in->gcount());
}

std::string AddPath(archive* a, archive* disk, const fs::path& path, int* entries) {
  archive_entry* entry = archive_entry_new();
  archive_entry_copy_sourcepath(entry, path.c_str());
  if (archive_read_disk_entry_from_file(disk, entry, -1, nullptr) != ARCHIVE_OK) {
    std::string err = ErrorOf(disk);
    archive_entry_free(entry);
    return path.string() + ": " + err;
  }
  std::string name = path.relative_path().string();
  archive_entry_copy_pathname(entry, name.c_str());
  if (archive_write_header(a, entry) != ARCHIVE_OK) {
    std::string err = ErrorOf(a);
    archive_entry_free(entry);
    return path.string() + ": " + err;
  }
  ++*entries;
  std::string error;
  if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      error = path.string() + ": cannot open";
    } else {
      char buf[64 * 1024];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) {
        if (archive_write_data(a, buf, static_cast<size_t>(n)) < 0) {
          error = path.string() + ": " + ErrorOf(a);
          break;
        }
      }
      close(fd);
    }
  }
  archive_entry_free(entry);
  return error;
}

}  // namespace

// Writes the archive to `sink`, a WriteState.
static std::string WriteArchiveTo(const Roots& roots, const std::vector<std::string>& paths, bool gzip,
                                  void* sink, int* entries);

std::string WriteArchive(const Roots& roots, const std::vector<std::string>& paths, bool gzip,
                         std::int64_t max_bytes, std::ostream& out, int* entries, bool* too_large) {
  *entries = 0;
  *too_large = false;
  WriteState state{&out, 0, max_bytes, false};
  std::string error = WriteArchiveTo(roots, paths, gzip, &state, entries);
  *too_large = state.over;
  if (state.over) return "the archive is larger than max_bytes (" + std::to_string(max_bytes) + ")";
  return error;
}

std::string WriteArchiveTo(const Roots& roots, const std::vector<std::string>& paths, bool gzip, void* sink,
                           int* entries) {
  std::vector<fs::path> resolved;
  for (const auto& p : paths) {
    Confined c = roots.Resolve(p);
    if (!c.error.empty()) return c.error;
    resolved.emplace_back(c.path);
  }
  ArchivePtr a(archive_write_new(), archive_write_free);
  ArchivePtr disk(archive_read_disk_new(), archive_read_free);
  archive_read_disk_set_symlink_physical(disk.get());
  archive_read_disk_set_standard_lookup(disk.get());
  archive_write_set_format_pax_restricted(a.get());
  if (gzip) {
    // Fast over small: archives are taken after every run, while the session waits.
    archive_write_add_filter_gzip(a.get());
    archive_write_set_filter_option(a.get(), "gzip", "compression-level", "1");
  }
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open2(a.get(), sink, nullptr, WriteToStream, nullptr, nullptr) != ARCHIVE_OK) {
    return ErrorOf(a.get());
  }
  for (const fs::path& root : resolved) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(root, ec))) continue;  // absent paths are skipped
    std::string err = AddPath(a.get(), disk.get(), root, entries);
    if (!err.empty()) return err;
    if (fs::is_directory(fs::symlink_status(root, ec))) {
      fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        err = AddPath(a.get(), disk.get(), it->path(), entries);
        if (!err.empty()) return err;
      }
      if (ec) return root.string() + ": " + ec.message();
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return ErrorOf(a.get());
  return "";
}

std::string ExtractArchive(const Roots& roots, std::istream& in, int* entries) {
  *entries = 0;
  auto state = std::make_unique<ReadState>();
  state->in = &in;
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_none(a.get());
  ArchivePtr disk(archive_write_disk_new(), archive_write_free);
  archive_write_disk_set_options(
      disk.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                      ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                      ARCHIVE_EXTRACT_UNLINK);
  if (archive_read_open(a.get(), state.get(), nullptr, ReadFromStream, nullptr) != ARCHIVE_OK) {
    return std::string("not an archive: ") + ErrorOf(a.get());
  }
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return std::string("bad archive: ") + ErrorOf(a.get());
    std::string name = archive_entry_pathname(entry);
    Confined target = roots.Resolve("/" + name);
    if (name.empty() || name[0] == '/' || !target.error.empty()) {
      return "archive entry '" + name +
             "' refused: " + (target.error.empty() ? "absolute path" : target.error);
    }
    // A hard link must also point inside.
    if (const char* link = archive_entry_hardlink(entry)) {
      Confined l = roots.Resolve("/" + std::string(link));
      if (!l.error.empty()) return "archive entry '" + name + "' refused: link " + l.error;
      archive_entry_copy_hardlink(entry, l.path.c_str());
    }
    archive_entry_copy_pathname(entry, target.path.c_str());
    // Extraction under the absolute target needs the absolute-path check off for this entry; the
    // target was confined above.
    archive_write_disk_set_options(disk.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                   ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                   ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_UNLINK);
    if (archive_write_header(disk.get(), entry) != ARCHIVE_OK) {
      return "archive entry '" + name + "': " + ErrorOf(disk.get());
    }
    const void* buf;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(a.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(disk.get(), buf, size, offset) != ARCHIVE_OK) {
        return "archive entry '" + name + "': " + ErrorOf(disk.get());
      }
    }
    if (r != ARCHIVE_EOF) return "archive entry '" + name + "': " + ErrorOf(a.get());
    if (archive_write_finish_entry(disk.get()) != ARCHIVE_OK) {
      return "archive entry '" + name + "': " + ErrorOf(disk.get());
    }
    ++*entries;
  }
  return "";
}

}  // namespace paddock::runtime
