{
  "targets": [
    {
      "target_name": "xbfs",
      "sources": ["native/xbfs.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
