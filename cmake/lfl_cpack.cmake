# Debian packages: `cpack -G DEB` in the build directory writes
#   lotteryfl_<version>_<arch>.deb      the programs (component runtime); its Depends come from
#                                       dpkg-shlibdeps, so `apt-get install ./lotteryfl_*.deb`
#                                       pulls in the shared libraries they need
#   lotteryfl-dev_<version>_<arch>.deb  static libraries, headers and the CMake package
#                                       (component dev); depends on the -dev packages that
#                                       lotteryflConfig.cmake finds
set(CPACK_PACKAGE_NAME lotteryfl)
set(CPACK_PACKAGE_VENDOR "lotteryfl")
set(CPACK_PACKAGE_CONTACT "lotteryfl maintainers <lotteryfl@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Federated lottery tickets with BSQ bit-plane transport")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME lotteryfl)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# Debian's LibTorch runs ~10x slower on the reference BLAS (docs/architecture.md).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "libopenblas0-pthread, dataset-fashion-mnist")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
  "lotteryfl-server, lotteryfl-client, lotteryfl-sim and lotteryfl-partition: a gRPC federated-learning\n"
  "server and clients that train personalized sparse subnetworks (LotteryFL) and send them as BSQ\n"
  "mixed-precision bit planes.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME lotteryfl-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libtorch-dev, libgrpc++-dev, libprotobuf-dev, libabsl-dev, libspdlog-dev, libboost-dev, libcli11-dev, nlohmann-json3-dev, libtomlplusplus-dev, zlib1g-dev, prometheus-cpp-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "Static libraries, headers and the CMake package (find_package(lotteryfl CONFIG)) to embed\n"
  "lotteryfl clients and servers in another program.")

include(CPack)
