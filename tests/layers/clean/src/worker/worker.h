#include "../store/queue.h" /* relative, resolved against src/: worker -> store */
