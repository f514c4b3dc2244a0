package gen

import "net/netip"

// The pools are read-only after package initialization. Their order matters:
// Zipf picks the first entries most often, so common names come first and
// every language has common and rare entries.

// firstNames are given names from many languages; many have non-ASCII
// letters, and some fold specially (ß, final sigma, dotted İ, Ĳ).
var firstNames = []string{
	"Maria", "José", "Anna", "John", "Zoë", "Mohammed", "Łukasz", "Sofía", "Jean", "Ingrid",
	"Wei", "Fatma", "Michael", "Chloé", "Søren", "Emma", "Müge", "Olga", "David", "Ana",
	"Björn", "Élodie", "Giulia", "Hiroshi", "Ayşe", "Nikolaos", "Zofia", "Pablo", "Sarah", "Jürgen",
	"Amélie", "Matteo", "Małgorzata", "Andrés", "Kateřina", "Lars", "Noémie", "Emre", "Ángel", "Dmitri",
	"Laura", "Ömer", "Jiří", "Hélène", "Thomas", "Ağça", "Agnieszka", "Raúl", "Lena", "Çağla",
	"Daniel", "Maëlle", "Tomáš", "Ólafur", "Aoife", "Kristýna", "Åsa", "Siobhán", "Eleni", "Gülşen",
	"Peter", "Renée", "Nuño", "Dagný", "Paweł", "Brontë", "Şebnem", "Ignacio", "Mårten", "Zdeněk",
	"Lucía", "Grzegorz", "Ilse", "Benoît", "Þórdís", "İlker", "Ødger", "François", "Ludmila", "Joël",
	"Σοφία", "Γιώργος", "Δημήτρης", "Αικατερίνη", "Νίκος", "Ελένη", "Ιωάννης", "Μαρία", "Κώστας", "Σίσυφος",
	"Ольга", "Иван", "Наталья", "Сергей", "Татьяна", "Алексей", "Ирина", "Дмитрий", "Юлия", "Андрей",
	"Aleksander", "Bartłomiej", "Cécile", "Dóra", "Eszter", "Fañch", "Gwenaëlle", "Håkon", "Iñaki", "Jokūbas",
	"Kārlis", "Lætitia", "Mihály", "Nataša", "Oğuz", "Pålle", "Quitéria", "Radosław", "Šárka", "Tünde",
	"Urška", "Vojtěch", "Władysław", "Xosé", "Yağmur", "Žaneta", "Ĳsbrand", "ǅenan", "Ærwin", "Øystein",
	"Aurélien", "Bérénice", "Cosmin", "Dănuț", "Ștefan", "Țara", "Ióna", "Eoghan", "Gráinne", "Niamh",
	"Tuğba", "Şükrü", "Ğülten", "Çetin", "Üzeyir", "Jón", "Sigríður", "Guðrún", "Ragnheiður", "Þorsteinn",
	"Li", "Hoàng", "Nguyễn", "Thị", "Phương", "Đức", "Ánh", "Minh", "Trần", "Lê",
	"Kalani", "Leilani", "Kekoa", "Mālie", "Noe", "Ikaika", "Kawika", "Māhina", "Keoni", "Pua",
	"Oisín", "Caoimhe", "Ciarán", "Éabha", "Pádraig", "Seán", "Máire", "Bríd", "Tadhg", "Róisín",
}

// lastNames are family names from many languages, some with apostrophes,
// spaces, periods or hyphens.
var lastNames = []string{
	"García", "Müller", "Smith", "Nowak", "Rossi", "Johansson", "Yılmaz", "Dubois", "Novák", "Kowalski",
	"Fernández", "Schröder", "Jones", "Wiśniewski", "Bianchi", "Ødegaard", "Kaya", "Lefèvre", "Dvořák", "Papadopoulos",
	"Martínez", "Weiß", "O'Brien", "Wójcik", "Esposito", "Åström", "Demir", "Girard", "Svoboda", "Nguyễn",
	"López", "Schäfer", "Williams", "Kamiński", "Ricci", "Lindqvist", "Şahin", "Bonnet", "Procházka", "Ivanov",
	"Sánchez", "Groß", "MacLeod", "Lewandowski", "Romano", "Nyström", "Çelik", "Lambert", "Kučera", "Petrov",
	"Pérez", "Köhler", "Brown", "Zieliński", "Colombo", "Sjöberg", "Öztürk", "Fontaine", "Veselý", "Smirnov",
	"Gómez", "Jäger", "van der Berg", "Szymański", "Marino", "Hämäläinen", "Aydın", "Rousseau", "Horák", "Kuznetsov",
	"Díaz", "Hübner", "de la Cruz", "Woźniak", "Greco", "Mäkinen", "Arslan", "Chevalier", "Němec", "Popov",
	"Muñoz", "Fuß", "St. John", "Dąbrowski", "Bruno", "Virtanen", "Doğan", "Lemaître", "Pokorný", "Sokolov",
	"Álvarez", "Krüger", "D'Angelo", "Kozłowski", "Gallo", "Korhonen", "Kılıç", "Gauthier", "Marek", "Lebedev",
	"Ó Briain", "Mac Giolla", "Ní Bhriain", "Ó Súilleabháin", "Nic Amhlaoibh", "Ó Ceallaigh", "Mag Uidhir", "de Búrca", "Ó Dónaill", "Breathnach",
	"Παπαδόπουλος", "Γεωργίου", "Οικονόμου", "Νικολάου", "Καραγιάννης", "Βασιλείου", "Ιωάννου", "Δημητρίου", "Αθανασίου", "Χριστοδούλου",
	"Иванова", "Смирнова", "Кузнецова", "Попова", "Васильев", "Соколова", "Михайлов", "Новиков", "Фёдоров", "Морозов",
	"İnönü", "Gündoğdu", "Eşref", "Ağaoğlu", "Türkoğlu", "Çakır", "Güneş", "Bayraktar", "Özdemir", "Erdoğan",
	"Þórsson", "Guðmundsdóttir", "Sigurðsson", "Jónsdóttir", "Einarsson", "Ólafsdóttir", "Kristjánsson", "Björnsdóttir", "Árnason", "Hafþórsson",
	"Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ",
	"Łódzki", "Żurawski", "Ćwikła", "Śliwiński", "Źrebiec", "Ńemcewicz", "Szczęsny", "Gąsiorowski", "Krzyżanowski", "Błaszczyk",
	"Ĳzerman", "ǄURIĆ", "Đurić", "Šimić", "Čolić", "Ćorić", "Žagar", "Kovačević", "Jovanović", "Petrović",
	"Nuñez", "Peña", "Ibáñez", "Castaño", "Muñiz", "Ordóñez", "Yáñez", "Cañizares", "Montaño", "Brañas",
	"Hakala", "Kärkkäinen", "Määttä", "Pöllänen", "Ylönen", "Heikkilä", "Lähteenmäki", "Säilä", "Öhman", "Jääskeläinen",
}

// emailDomains are the few providers the addresses are spread over.
var emailDomains = []weighted{
	{"gmail.com", 38}, {"outlook.com", 14}, {"yahoo.com", 11}, {"hotmail.com", 8},
	{"web.de", 6}, {"proton.me", 5}, {"mail.example.net", 9}, {"example.org", 9},
}

// ipBlocks are where addresses cluster: a few large private networks and
// many small public blocks, IPv4 and IPv6 (documentation and ULA ranges).
// Zipf picks the first ones most often.
var ipBlocks = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/16"),
	netip.MustParsePrefix("192.168.1.0/24"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("2001:db8::/48"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd12:3456:789a::/48"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("10.20.0.0/16"),
	netip.MustParsePrefix("2001:db8:1234::/48"),
	netip.MustParsePrefix("192.168.100.0/22"),
	netip.MustParsePrefix("10.250.4.0/24"),
	netip.MustParsePrefix("2001:db8:ffff:1::/64"),
	netip.MustParsePrefix("172.31.255.0/28"),
	netip.MustParsePrefix("fe80::/64"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("2001:db8:abcd:12::/64"),
	netip.MustParsePrefix("10.99.99.0/30"),
	netip.MustParsePrefix("fd00:dead:beef::/112"),
}

// transliteration spells the folded non-ASCII letters of the pools in
// ASCII for email addresses.
var transliteration = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'ą': "a", 'ă': "a", 'ā': "a", 'ạ': "a", 'æ': "ae",
	'ç': "c", 'ć': "c", 'č': "c", 'ď': "d", 'đ': "d", 'ð': "d", 'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ę': "e",
	'ě': "e", 'ễ': "e", 'ğ': "g", 'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ı': "i", 'ĳ': "ij", 'ǆ': "dz",
	'ł': "l", 'ñ': "n", 'ń': "n", 'ň': "n", 'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o", 'ö': "o", 'ø': "o",
	'ő': "o", 'ồ': "o", 'ř': "r", 'ś': "s", 'š': "s", 'ş': "s", 'ș': "s", 'ß': "ss", 'ť': "t", 'ț': "t",
	'þ': "th", 'ù': "u", 'ú': "u", 'û': "u", 'ü': "u", 'ů': "u", 'ū': "u", 'ủ': "u", 'ý': "y", 'ÿ': "y",
	'ź': "z", 'ż': "z", 'ž': "z", 'ị': "i", 'ư': "u", 'ơ': "o", 'ứ': "u", 'ầ': "a", 'ặ': "a", 'ỳ': "y", 'ỗ': "o",
	'ǌ': "nj", 'ķ': "k", 'ļ': "l", 'ņ': "n", 'ģ': "g", 'ė': "e", 'į': "i", 'ų': "u", 'ē': "e", 'ī': "i",
	'α': "a", 'β': "v", 'γ': "g", 'δ': "d", 'ε': "e", 'ζ': "z", 'η': "i", 'θ': "th", 'ι': "i", 'κ': "k",
	'λ': "l", 'μ': "m", 'ν': "n", 'ξ': "x", 'ο': "o", 'π': "p", 'ρ': "r", 'σ': "s", 'ς': "s", 'τ': "t",
	'υ': "y", 'φ': "f", 'χ': "ch", 'ψ': "ps", 'ω': "o", 'ά': "a", 'έ': "e", 'ή': "i", 'ί': "i", 'ό': "o",
	'ύ': "y", 'ώ': "o", 'ϊ': "i",
	'а': "a", 'б': "b", 'в': "v", 'г': "g", 'д': "d", 'е': "e", 'ё': "e", 'ж': "zh", 'з': "z", 'и': "i",
	'й': "y", 'к': "k", 'л': "l", 'м': "m", 'н': "n", 'о': "o", 'п': "p", 'р': "r", 'с': "s", 'т': "t",
	'у': "u", 'ф': "f", 'х': "kh", 'ц': "ts", 'ч': "ch", 'ш': "sh", 'щ': "shch", 'ъ': "", 'ы': "y", 'ь': "",
	'э': "e", 'ю': "yu", 'я': "ya",
}
