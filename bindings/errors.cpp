#include "icgt/errors.hpp"

#include "bindings.hpp"

namespace icgt::python {

void register_errors() {
  // Most-derived first: icgt::TypeError is also a std::invalid_argument.
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const icgt::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const icgt::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const icgt::FileNotFoundError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const icgt::RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace icgt::python
