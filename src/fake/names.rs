//! Names for the simulated tenant: people from many places (with the
//! Unicode real directories hold), departments, products and CVEs.

/// (display form, ASCII form for user principal names)
pub const FIRST_NAMES: &[(&str, &str)] = &[
    ("Ava", "ava"), ("Liam", "liam"), ("Åsa", "asa"), ("Zoë", "zoe"), ("José", "jose"),
    ("Øyvind", "oyvind"), ("Siobhán", "siobhan"), ("Noah", "noah"), ("Emma", "emma"),
    ("Mateo", "mateo"), ("Chloé", "chloe"), ("Jürgen", "jurgen"), ("Ngozi", "ngozi"),
    ("Priya", "priya"), ("Arjun", "arjun"), ("Mei", "mei"), ("Hiroshi", "hiroshi"),
    ("Yuki", "yuki"), ("Olga", "olga"), ("Dmitri", "dmitri"), ("Fatima", "fatima"),
    ("Omar", "omar"), ("Lucía", "lucia"), ("Björn", "bjorn"), ("Ingrid", "ingrid"),
    ("François", "francois"), ("Zainab", "zainab"), ("Kwame", "kwame"), ("Aiko", "aiko"),
    ("Sven", "sven"), ("Maëlle", "maelle"), ("Thiago", "thiago"), ("Chen", "chen"),
    ("Ana", "ana"), ("Grace", "grace"), ("Ethan", "ethan"), ("Olivia", "olivia"),
    ("Henrik", "henrik"), ("Saoirse", "saoirse"), ("Łukasz", "lukasz"), ("Zoltán", "zoltan"),
    ("Nadia", "nadia"), ("Rafael", "rafael"), ("Amara", "amara"), ("Kenji", "kenji"),
    ("Isabella", "isabella"), ("Elif", "elif"), ("Mohammed", "mohammed"), ("Sofia", "sofia"),
    ("Tomás", "tomas"),
];

pub const LAST_NAMES: &[(&str, &str)] = &[
    ("Dubois", "dubois"), ("Smith", "smith"), ("Lindqvist", "lindqvist"), ("García", "garcia"),
    ("Müller", "muller"), ("O'Brien", "obrien"), ("Nakamura", "nakamura"), ("Okafor", "okafor"),
    ("Kowalski", "kowalski"), ("Novák", "novak"), ("Haugen", "haugen"), ("Rossi", "rossi"),
    ("Patel", "patel"), ("Singh", "singh"), ("Wang", "wang"), ("Kim", "kim"),
    ("Ivanova", "ivanova"), ("Al-Sayed", "alsayed"), ("Fernández", "fernandez"),
    ("Johansson", "johansson"), ("Mensah", "mensah"), ("Tanaka", "tanaka"), ("Brown", "brown"),
    ("Nguyễn", "nguyen"), ("Silva", "silva"), ("Kaya", "kaya"), ("Murphy", "murphy"),
    ("Schmidt", "schmidt"), ("Jensen", "jensen"), ("Lefèvre", "lefevre"), ("Costa", "costa"),
    ("Horváth", "horvath"), ("Yilmaz", "yilmaz"), ("Andersson", "andersson"), ("Chopra", "chopra"),
    ("Sato", "sato"), ("Walker", "walker"), ("Petrov", "petrov"), ("Hughes", "hughes"),
    ("Santos", "santos"),
];

/// Full names written family-name first, as directories hold them.
pub const EAST_ASIAN_NAMES: &[(&str, &str, &str, &str)] = &[
    // (display, surname, given, ascii)
    ("李小龙", "李", "小龙", "li.xiaolong"),
    ("王芳", "王", "芳", "wang.fang"),
    ("김민준", "김", "민준", "kim.minjun"),
    ("佐藤花子", "佐藤", "花子", "sato.hanako"),
    ("陈静", "陈", "静", "chen.jing"),
];

pub const DEPARTMENTS: &[&str] = &[
    "Sales", "Engineering", "Finance", "Human Resources", "Marketing", "IT", "Legal",
    "Operations", "Customer Success", "Research & Development", "Security", "Procurement",
];

pub const JOB_TITLES: &[&str] = &[
    "Account Executive", "Software Engineer", "Financial Analyst", "HR Generalist",
    "Marketing Manager", "Systems Administrator", "Counsel", "Operations Lead",
    "Support Specialist", "Research Scientist", "Security Engineer", "Buyer",
    "Director", "Intern", "Principal Engineer",
];

pub const CITIES: &[(&str, &str)] = &[
    ("Seattle", "US"), ("London", "GB"), ("Stockholm", "SE"), ("Paris", "FR"),
    ("München", "DE"), ("São Paulo", "BR"), ("Tokyo", "JP"), ("Bengaluru", "IN"),
    ("Lagos", "NG"), ("Oslo", "NO"), ("Dublin", "IE"), ("Shanghai", "CN"),
];

pub const GROUP_TOPICS: &[&str] = &[
    "All Staff", "Engineering", "Sales EMEA", "Sales Americas", "Finance Team", "HR Confidential",
    "Project Aurora", "Project Nordlys", "Help Desk", "VPN Users", "Privileged Admins",
    "Marketing Events", "Intune Pilot", "Windows 11 Ring 1", "macOS Fleet", "Mobile Users",
    "Contractors", "Board", "Data Science", "Équipe Paris", "東京オフィス", "Security Champions",
];

pub const SERVICE_APPS: &[&str] = &[
    "Salesforce", "ServiceNow", "GitHub Enterprise", "Workday", "Slack", "Zoom", "Atlassian Cloud",
    "Okta Bridge", "Terraform Cloud", "Backup Agent", "Power BI Gateway", "HR Sync",
    "Monitoring Collector", "Build Pipeline", "Log Shipper", "Payroll Connector",
];

/// Software seen on devices: (name, publisher, versions, platforms bitmask:
/// 1 windows, 2 macos, 4 ios, 8 android, 16 linux).
pub const SOFTWARE: &[(&str, &str, &[&str], u8)] = &[
    ("Google Chrome", "Google LLC", &["129.0.6668.90", "130.0.6723.70", "131.0.6778.86"], 1 | 2 | 16),
    ("Microsoft Edge", "Microsoft Corporation", &["130.0.2849.68", "131.0.2903.51"], 1 | 2),
    ("Mozilla Firefox", "Mozilla", &["131.0.3", "132.0.2"], 1 | 2 | 16),
    ("Microsoft Teams", "Microsoft Corporation", &["24295.605.3225.8804", "24277.3502.3161.3015"], 1 | 2 | 4 | 8),
    ("Zoom Workplace", "Zoom Video Communications, Inc.", &["6.2.5", "6.2.11"], 1 | 2 | 4 | 8),
    ("7-Zip 23.01 (x64)", "Igor Pavlov", &["23.01"], 1),
    ("Adobe Acrobat Reader", "Adobe", &["24.003.20112", "24.004.20220"], 1 | 2),
    ("Microsoft 365 Apps for enterprise", "Microsoft Corporation", &["16.0.17928.20156", "16.0.18025.20104"], 1),
    ("Slack", "Slack Technologies", &["4.41.97", "4.40.128"], 1 | 2 | 4 | 8),
    ("Visual Studio Code", "Microsoft Corporation", &["1.94.2", "1.95.1"], 1 | 2 | 16),
    ("Notepad++", "Notepad++ Team", &["8.6.9", "8.7"], 1),
    ("Python 3.12", "Python Software Foundation", &["3.12.6", "3.12.7"], 1 | 2 | 16),
    ("Docker Desktop", "Docker Inc.", &["4.34.2", "4.35.1"], 1 | 2),
    ("OpenSSL", "OpenSSL Project", &["3.0.13", "3.0.14", "1.1.1w"], 16),
    ("Outlook", "Microsoft Corporation", &["4.2443.0", "4.2444.1"], 4 | 8),
    ("Authenticator", "Microsoft Corporation", &["6.2409.6263"], 4 | 8),
    ("WhatsApp", "WhatsApp Inc.", &["24.20.89"], 4 | 8),
    ("Company Portal", "Microsoft Corporation", &["5.0.6312.0", "5.2410.0"], 1 | 4 | 8),
    ("Git", "The Git Development Community", &["2.46.2", "2.47.0"], 1 | 2 | 16),
    ("Java 8 Update 421", "Oracle Corporation", &["8.0.4210.9"], 1 | 2),
    ("VLC media player", "VideoLAN", &["3.0.21"], 1 | 2 | 16),
    ("WinRAR 7.01", "win.rar GmbH", &["7.01.0"], 1),
    ("PuTTY release 0.81", "Simon Tatham", &["0.81.0.0"], 1),
    ("Keynote", "Apple", &["14.2"], 2 | 4),
];

/// CVE products for Defender findings: (vendor, product, version).
pub const VULN_PRODUCTS: &[(&str, &str, &str)] = &[
    ("google", "chrome", "129.0.6668.90"),
    ("microsoft", "edge_chromium-based", "130.0.2849.68"),
    ("mozilla", "firefox", "131.0.3"),
    ("microsoft", "windows_11", "10.0.22631.4317"),
    ("microsoft", "windows_10", "10.0.19045.5011"),
    ("microsoft", "windows_server_2022", "10.0.20348.2762"),
    ("microsoft", "office", "16.0.17928.20156"),
    ("openssl", "openssl", "3.0.13"),
    ("oracle", "jre", "1.8.0.421"),
    ("7-zip", "7-zip", "23.01"),
    ("videolan", "vlc_media_player", "3.0.21"),
    ("apple", "macos", "14.6.1"),
    ("canonical", "ubuntu_linux", "22.04"),
    ("python", "python", "3.12.6"),
    ("git-scm", "git", "2.46.2"),
];

pub const CVE_WORDS: &[&str] = &[
    "Remote code execution", "Elevation of privilege", "Information disclosure",
    "Security feature bypass", "Denial of service", "Spoofing", "Use after free",
    "Heap buffer overflow", "Type confusion", "Out-of-bounds read",
];
