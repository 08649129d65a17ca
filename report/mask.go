package report

// Mask hides the last digits digits of a number (a client's hidden_digits,
// DOMAIN.md "Hidden numbers") behind 'X', leaving everything else — a
// leading '+', a tech prefix's '#' — as it is. Every report and export that
// shows a number passes it through Mask with the digits of the client the
// number belongs to; digits <= 0 shows the number whole.
func Mask(number string, digits int) string {
	if digits <= 0 || number == "" {
		return number
	}
	b := []byte(number)
	for i := len(b) - 1; i >= 0 && digits > 0; i-- {
		if b[i] >= '0' && b[i] <= '9' {
			b[i] = 'X'
			digits--
		}
	}
	return string(b)
}
