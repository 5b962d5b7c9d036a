#include "icgt/errors.hpp"

#include "bindings.hpp"

#include <cstring>

namespace icgt::python {

namespace {

// The exception with message `what`. A message can quote bytes from a file (a bundle's path or
// contents) that are not UTF-8: PyErr_SetString would then raise UnicodeDecodeError instead, so
// such bytes are written as \xHH.
void set_error(PyObject* type, const char* what) {
  PyObject* message = PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "backslashreplace");
  if (message == nullptr) return;  // the decoding error stays set
  PyErr_SetObject(type, message);
  Py_DECREF(message);
}

}  // namespace

void register_errors() {
  // Most-derived first: icgt::TypeError is also a std::invalid_argument.
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const icgt::TypeError& e) {
      set_error(PyExc_TypeError, e.what());
    } catch (const icgt::ValueError& e) {
      set_error(PyExc_ValueError, e.what());
    } catch (const icgt::FileNotFoundError& e) {
      set_error(PyExc_FileNotFoundError, e.what());
    } catch (const icgt::RuntimeError& e) {
      set_error(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace icgt::python
