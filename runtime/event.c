/* Placeholder: being written (issue 3). */
typedef int weft__placeholder_event;
