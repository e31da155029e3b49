/* Placeholder: being written (issue 3). */
#ifndef WEFT_LOCAL_H
#define WEFT_LOCAL_H
#endif
