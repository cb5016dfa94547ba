// Package envfile reads environment files: KEY=VALUE lines as systemd's
// EnvironmentFile= and docker's --env-file accept them, for an app's
// env_file key.
//
// A line is blank, a comment (its first non-blank character is '#' or
// ';'), or an assignment: an optional "export " prefix, a name of letters,
// digits and '_' not starting with a digit, '=', and a value. A value is
// taken literally up to the end of the line, with blanks around it
// trimmed; in single quotes it is literal, in double quotes the escapes
// \" \\ \$ \` \n \t and \r apply and a backslash before a line break joins
// the lines. Either quote may span lines. After a closing quote only blanks
// and a '#' comment may follow. Nothing is expanded: "$HOME" stays as
// written, as in both systemd and docker.
//
// It is not a shell: no command substitution, no variable expansion, no
// line continuation outside double quotes. A bare "KEY" with no '=' is an
// error (docker would copy KEY from its own environment; systemd ignores
// the line).
package envfile
