{
  "targets": [
    {
      "target_name": "vmmr_vfio_user",
      "sources": ["vfio_user_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
