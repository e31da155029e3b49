/* Placeholder: being written (issue 3). */
#ifndef WEFT_CHANNEL_H
#define WEFT_CHANNEL_H
#endif
