{
  "targets": [
    {
      "target_name": "wasmerang_native",
      "sources": ["addon.c", "original_dst.c", "allocator.c"]
    }
  ]
}
