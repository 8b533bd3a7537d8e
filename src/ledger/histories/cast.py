"""The people, purposes and payees of a generated history (all made up)."""

from __future__ import annotations

PUT_EVENTS = 20_000  # events per write transaction on the bulk path
NO_FINGERPRINT = "0" * 64

ADMIN = "周文华"
TREASURER = "刘晓梅"
COMMITTEE = ("李德福", "王秀英", "张建国")
PURPOSES = (("elderly-care", "养老"), ("education", "教育"), ("2025-flood", "2025年水灾救助"))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
GRANTEES = (
    "牌坊村老年协会",
    "牌坊村小学",
    "县城亮光照明工程部",
    "Green Hills Youth Club",
    "茶乡 合作社（二组）",
    "村卫生室",
)
CHANNELS = ("wechat", "wechat", "alipay", "bank", "bank", "cash", "other")
CATEGORIES = ("program", "program", "administration", "fundraising")
