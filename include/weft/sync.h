/* Placeholder: being written (issue 3). */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H
#endif
