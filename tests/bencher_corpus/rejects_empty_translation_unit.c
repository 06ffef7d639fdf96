/* expect: rejected
 * why: nothing but this comment; gcc compiles it to an empty object with no dgemm.
 * detail: dgemm
 */
