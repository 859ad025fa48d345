{
  "targets": [
    {
      "target_name": "xbfs",
      "sources": ["native/xbfs.c", "native/scandir.c", "native/walker.c", "native/manifest-merge.c", "native/unchanged-dir.c", "native/xxh64.c", "native/beneath.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "xbzstd",
      "sources": ["native/xbzstd.c"],
      "cflags": ["-O2", "-Wall"],
      "libraries": ["-lzstd"]
    }
  ]
}
