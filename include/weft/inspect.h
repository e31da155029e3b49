/* Placeholder: being written (issue 3). */
#ifndef WEFT_INSPECT_H
#define WEFT_INSPECT_H
#endif
