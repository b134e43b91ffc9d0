// zlib for relay-bench codec's baseline encoder (dirty tiles, solid or raw, one stream).
#include <zlib.h>
