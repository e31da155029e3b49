/* Placeholder: being written (issue 3). */
#ifndef WEFT_COMBINE_H
#define WEFT_COMBINE_H
#endif
