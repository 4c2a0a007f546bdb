"""Small word lists the demo generator draws fake people, firms and texts from.

Every name here is a common first name, surname or place; combinations are
random and belong to nobody.  E-mail addresses use reserved example domains.
"""

from __future__ import annotations

import json
from importlib.resources import files

# (hanzi, pinyin)
CN_SURNAMES = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("高", "gao"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
]
CN_GIVEN = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("秀英", "xiuying"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀兰", "xiulan"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("建华", "jianhua"),
    ("志强", "zhiqiang"),
    ("海燕", "haiyan"),
    ("晓东", "xiaodong"),
    ("文博", "wenbo"),
    ("雨桐", "yutong"),
]
# (province hanzi, city hanzi, city pinyin, district pinyin, postcode prefix)
CN_PLACES = [
    ("江苏省", "南京市", "Nanjing", "Gulou", "210"),
    ("江苏省", "苏州市", "Suzhou", "Gusu", "215"),
    ("浙江省", "杭州市", "Hangzhou", "Xihu", "310"),
    ("浙江省", "宁波市", "Ningbo", "Yinzhou", "315"),
    ("广东省", "深圳市", "Shenzhen", "Nanshan", "518"),
    ("广东省", "广州市", "Guangzhou", "Tianhe", "510"),
    ("山东省", "青岛市", "Qingdao", "Shinan", "266"),
    ("福建省", "厦门市", "Xiamen", "Siming", "361"),
    ("上海市", "上海市", "Shanghai", "Pudong", "200"),
    ("北京市", "北京市", "Beijing", "Chaoyang", "100"),
]
CN_STREETS = [
    ("中山", "Zhongshan"),
    ("人民", "Renmin"),
    ("解放", "Jiefang"),
    ("建设", "Jianshe"),
    ("和平", "Heping"),
    ("长江", "Changjiang"),
    ("新华", "Xinhua"),
    ("科技", "Keji"),
]
CN_FIRM_WORDS = [
    "Huaxin",
    "Hengda",
    "Jinlong",
    "Tianyu",
    "Xinghe",
    "Ruifeng",
    "Dongsheng",
    "Baoli",
    "Kaiyuan",
    "Minghui",
]

# country: (first names, surnames, (city, postcode) pairs, streets, firm suffix, calling code)
WESTERN = {
    country: (
        w["first_names"],
        w["surnames"],
        [tuple(c) for c in w["cities"]],
        w["streets"],
        w["firm_suffix"],
        w["calling_code"],
    )
    for country, w in json.loads(files(__package__).joinpath("western.json").read_text(encoding="utf-8")).items()
}

# country: weight (per 1000 users); CN dominates, some GDPR countries.
COUNTRIES = [
    ("CN", 600),
    ("US", 90),
    ("DE", 60),
    ("FR", 40),
    ("GB", 30),
    ("IN", 40),
    ("IT", 25),
    ("ES", 25),
    ("NL", 20),
    ("JP", 30),
    ("BR", 20),
    (None, 20),
]
EU = {"DE", "FR", "IT", "ES", "NL"}
CURRENCY = {"CN": "CNY", "DE": "EUR", "FR": "EUR", "IT": "EUR", "ES": "EUR", "NL": "EUR", "GB": "GBP", "JP": "JPY"}
NATIVE_LOCALE = {"CN": "zh-CN", "DE": "de", "FR": "fr", "IT": "it", "ES": "es", "NL": "nl", "JP": "ja", "BR": "pt-BR"}

EMAIL_DOMAINS_CN = ["example.cn", "mail.example.cn", "example.com"]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com"]

INDUSTRIES = [
    "Electronics",
    "Machinery",
    "Textiles",
    "Home & Garden",
    "Auto Parts",
    "Lighting",
    "Packaging",
    "Chemicals",
    "Furniture",
    "Medical Supplies",
    "Sporting Goods",
    "Toys",
]
FIRM_TAILS = ["Trading", "Import & Export", "Industrial", "Supply", "Technology", "Sourcing"]

PRODUCTS = [
    "LED panel light",
    "CNC milling machine",
    "cotton T-shirt",
    "solar garden lamp",
    "brake pad set",
    "corrugated carton",
    "stainless steel valve",
    "office chair",
    "nitrile gloves",
    "yoga mat",
    "plush toy",
    "lithium battery pack",
    "PVC pipe fitting",
    "bluetooth speaker",
    "ceramic mug",
    "hydraulic pump",
    "silk scarf",
    "wooden cutting board",
    "USB-C cable",
    "infrared thermometer",
    "injection mould",
    "laser engraver",
    "bamboo flooring",
    "aluminium profile",
    "wire harness",
]
COLORS = ["black", "white", "red", "blue", "green", "grey", "custom colour"]

INQUIRY_SUBJECTS = [
    "Inquiry about {product}",
    "Quotation request: {product}",
    "Sample request for {product}",
    "{product} - MOQ and lead time?",
    "Price for {qty} pcs {product}",
]
INQUIRY_BODIES = [
    "Hello, we are interested in your {product}. Please quote for {qty} pieces, FOB, and tell us the lead time.",
    "Dear supplier, could you send a sample of the {product} in {color}? We plan an order of {qty} units.",
    "Hi, what is the MOQ for {product}? We need {qty} pcs with our logo. Delivery to {city}.",
]
INQUIRY_BODIES_ZH = [
    "您好，我们对贵公司的{product}感兴趣，请报{qty}件的价格和交货期。",
    "请问{product}是否可以提供样品？颜色：{color}，预计订购{qty}件。",
]
CHAT_BUYER = [
    "Hi, is the {product} still available?",
    "Can you do a better price for {qty} pcs?",
    "Please send the latest catalogue.",
    "When can you ship?",
    "OK, I will confirm with my boss.",
    "Can you print our logo on the {product}?",
    "Thanks, received the sample.",
]
CHAT_BUYER_ZH = ["你好，{product}还有货吗？", "{qty}件能便宜一点吗？", "什么时候可以发货？", "好的，谢谢！"]
CHAT_SUPPLIER = [
    "Yes, we have stock.",
    "For {qty} pcs the unit price is {price} USD.",
    "Lead time is about 15 days.",
    "Sure, logo printing is available.",
    "Please check the attached photo.",
    "Thank you for your order!",
]
CONTACT_NOTE = ["You can call me at {phone}.", "My e-mail is {email}.", "Ship to: {address}"]

ACTIONS = [
    ("view_product", "/product/{n}", 40),
    ("search", "/search?q={q}", 20),
    ("view_supplier", "/supplier/{n}", 12),
    ("add_favorite", "/favorites/add/{n}", 5),
    ("send_inquiry", "/inquiry/new", 4),
    ("open_chat", "/chat/{n}", 6),
    ("login", "/login", 8),
    ("view_order", "/orders/{n}", 3),
    ("settings", "/account/settings", 2),
]

# (os, hardware models, device id types, user-agent template)
PLATFORMS = [
    (
        "iOS 17.5",
        ["iPhone 13", "iPhone 14 Pro", "iPhone 15", "iPad Air"],
        ["IDFA", "OPENUDID"],
        "MIC-Buyer/{v} (iPhone; iOS 17.5)",
    ),
    ("iOS 18.1", ["iPhone 15 Pro", "iPhone 16", "iPhone SE"], ["IDFA"], "MIC-Buyer/{v} (iPhone; iOS 18.1)"),
    (
        "Android 13",
        ["HUAWEI Mate 50", "OPPO Reno9", "vivo X90", "Samsung Galaxy A54"],
        ["IMEI", "ANDROID_ID"],
        "MIC-Buyer/{v} (Linux; Android 13)",
    ),
    (
        "Android 14",
        ["Xiaomi 14", "HONOR Magic6", "Samsung Galaxy S24", "Google Pixel 8"],
        ["ANDROID_ID", "IMEI"],
        "MIC-Buyer/{v} (Linux; Android 14)",
    ),
    ("Windows 11", ["PC"], ["GUID"], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0"),
    ("macOS 14", ["MacBook Pro"], ["GUID"], "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15"),
]
APP_VERSIONS = ["5.1.0", "5.2.3", "5.3.1", "6.0.0"]
