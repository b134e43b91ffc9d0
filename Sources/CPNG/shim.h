// libpng for replay frames and viewer snapshots.
#include <png.h>
