// libpng for replay frames and viewer snapshots, through its simplified API
// (png_image_*), which reports errors in the png_image struct instead of longjmp.
#include <png.h>

// PNG_FORMAT_* are macros built from other macros behind #ifdefs; spell the two formats
// RelayScreen uses as constants Swift imports for sure.
static const png_uint_32 relay_png_format_bgra = PNG_FORMAT_BGRA;
static const png_uint_32 relay_png_format_bgr = PNG_FORMAT_BGR;
