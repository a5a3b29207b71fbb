/* Makes include/gpt_embedding.h a clang module that the Swift shims import,
   so that @c @implementation checks every shim against the header. */
#include "gpt_embedding.h"
