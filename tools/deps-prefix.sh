#!/usr/bin/env bash
# tools/deps-prefix.sh DIR — ordo's build dependencies other than LibTorch, copied from this
# Debian machine's packages into DIR/usr, a prefix that CMake finds on a machine that lacks them
# and cannot install them (no apt, no network: a GPU machine with only PyTorch, CUDA and CMake):
#
#   tools/deps-prefix.sh .gpu/deps          # here, where ./ordo deps has installed the packages
#   cmake -S . -B build -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$PWD/.gpu/deps/usr"   # there
#   (tools/gpu-check.sh does this itself when .gpu/deps exists)
#
# What goes in (about 4 MB): Boost.Hana with Boost's CMake package files (header-only),
# nlohmann-json, CLI11, doctest (headers and CMake files), PCRE2's header, its shared library and
# a pkg-config file relative to DIR. CMake files that name /usr are rewritten to find the prefix
# from their own location, so DIR may be moved anywhere. x86-64 Linux with glibc >= Debian 12's.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dest=$1
prefix=$dest/usr
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for pkg in libboost1.74-dev nlohmann-json3-dev libcli11-dev doctest-dev libpcre2-dev libpcre2-8-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { echo "deps-prefix: package $pkg is not installed (./ordo deps)" >&2; exit 1; }
done
# DIR is replaced: only when it is missing, empty, or an earlier prefix of this script (marked).
if [ -e "$dest" ] && [ ! -f "$dest/.ordo-deps-prefix" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
  echo "deps-prefix: $dest exists and is not a prefix this script made: not replaced" >&2
  exit 1
fi
rm -rf "$dest"
mkdir -p "$prefix"
touch "$dest/.ordo-deps-prefix"

copy() {  # copy absolute paths (files, symbolic links, directories) under $prefix, keeping their place
  local path
  for path in "$@"; do
    [ -e "$path" ] || [ -L "$path" ] || { echo "deps-prefix: $path is missing" >&2; exit 1; }
    mkdir -p "$prefix$(dirname "${path#/usr}")"
    cp -a "$path" "$prefix$(dirname "${path#/usr}")/"
  done
}
package_files() {  # the package's headers and CMake files (no documentation)
  dpkg -L "$1" | grep -E '^/usr/(include|lib|share/cmake)/' | while read -r f; do [ -f "$f" ] && echo "$f"; done
}

# Boost: Hana alone (ordo includes nothing else of Boost) and the files find_package(Boost) reads.
copy /usr/include/boost/hana /usr/include/boost/hana.hpp /usr/include/boost/version.hpp \
  /usr/include/boost/config /usr/include/boost/config.hpp
copy /usr/lib/"$arch"/cmake/Boost-1.74.0 /usr/lib/"$arch"/cmake/boost_headers-1.74.0 \
  /usr/lib/"$arch"/cmake/BoostDetectToolset-1.74.0.cmake
# Header-only libraries with their CMake packages.
for pkg in nlohmann-json3-dev libcli11-dev doctest-dev; do
  mapfile -t files < <(package_files "$pkg")
  copy "${files[@]}"
done
# PCRE2 (8-bit): header, shared library, and a pkg-config file that finds both under DIR.
copy /usr/include/pcre2.h
mapfile -t libs < <(ls -d /usr/lib/"$arch"/libpcre2-8.so*)
copy "${libs[@]}"
mkdir -p "$prefix/lib/$arch/pkgconfig"
version=$(pkg-config --modversion libpcre2-8)
cat > "$prefix/lib/$arch/pkgconfig/libpcre2-8.pc" <<EOF
prefix=\${pcfiledir}/../../..
includedir=\${prefix}/include
libdir=\${prefix}/lib/$arch

Name: libpcre2-8
Description: PCRE2 - Perl compatible regular expressions C library (8-bit), from tools/deps-prefix.sh
Version: $version
Libs: -L\${libdir} -lpcre2-8
Cflags: -I\${includedir}
EOF

# CMake files that hard-code the prefix /usr find it from their own directory instead.
while read -r file; do
  rel=${file#$prefix/}
  up=$(dirname "$rel" | sed -E 's#[^/]+#..#g')
  sed -i -E "s#set\(_IMPORT_PREFIX \"/usr\"\)#get_filename_component(_IMPORT_PREFIX \"\${CMAKE_CURRENT_LIST_DIR}/$up\" ABSOLUTE)#" "$file"
done < <(grep -rl 'set(_IMPORT_PREFIX "/usr")' "$prefix" || true)
if grep -rlE '"/usr(/include|/lib)?"' "$prefix" --include='*.cmake' >/dev/null; then
  echo "deps-prefix: CMake files still name /usr:" >&2
  grep -rlE '"/usr(/include|/lib)?"' "$prefix" --include='*.cmake' >&2
  exit 1
fi
echo "deps-prefix: $(du -sh "$dest" | cut -f1) in $dest (use -DCMAKE_PREFIX_PATH=$prefix)"
