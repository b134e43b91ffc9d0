// zlib for the tile-delta codec's deflate streams (PROTOCOL.md §7).
#include <zlib.h>
