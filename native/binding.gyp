{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["original_dst.c"]
    },
    {
      "target_name": "allocator",
      "sources": ["allocator.c"]
    }
  ]
}
