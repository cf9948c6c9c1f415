"""Access-log replay: web-server, proxy and CDN logs imported as if their traffic had come live."""
