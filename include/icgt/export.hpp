#pragma once
// ICGT_API marks what libicgt exports: the classes of these headers. The library is compiled with
// hidden visibility, so that everything else (icgt::detail, the model backend) stays inside it and
// the C++ API is exactly what the headers declare.

#if defined(__GNUC__) || defined(__clang__)
#define ICGT_API __attribute__((visibility("default")))
#else
#define ICGT_API
#endif
