import Foundation
import RNNText
import Testing

/// D2L's fra-eng preprocessing and vocabularies, the padded arrays, and BLEU (D2L's sentence formula and
/// sacreBLEU's corpus score).
@Suite("Translation data and BLEU")
struct TranslationDataTests {
    static let fra: String = {
        let path = sharedDataDirectory() + "/fra-eng/fra.txt"
        return TranslationText.preprocess(try! String(contentsOfFile: path, encoding: .utf8))
    }()

    @Test func preprocessingFollowsD2L() {
        #expect(TranslationText.preprocess("Go.\tVa !") == "go .\tva !")
        #expect(TranslationText.preprocess("Run!\tCours\u{202F}!") == "run !\tcours !")
        #expect(TranslationText.preprocess("Wait,\u{00A0}what?") == "wait , what ?")
        #expect(TranslationText.preprocess(".Hi") == ".hi", "nothing is inserted before the first character")
        #expect(TranslationText.preprocess("ÉTÉ.") == "été .")
    }

    @Test("600 examples give D2L's 601 pairs and vocabularies of 184 source and 201 target tokens")
    func d2lVocabularySizes() {
        let p = TranslationText.pairs(Self.fra, count: 600)
        #expect(p.count == 601 && p.skipped == 0)
        #expect(p.source[0] == ["go", "."] && p.target[0] == ["va", "!"])
        let sv = TranslationText.vocabulary(p.source, minFreq: 2), tv = TranslationText.vocabulary(p.target, minFreq: 2)
        #expect(sv.count == 184 && tv.count == 201)
        #expect(Array(sv.tokens.prefix(4)) == ["<unk>", "<pad>", "<bos>", "<eos>"])
    }

    @Test("the whole file gives D2L's 10,012 source tokens")
    func wholeFileSourceVocabulary() {
        let p = TranslationText.pairs(Self.fra, count: Int.max - 1)
        #expect(p.count == 167_130)
        #expect(TranslationText.vocabulary(p.source, minFreq: 2).count == 10_012)
    }

    @Test("D2L's first batch: <eos> appended, cut or padded to num-steps, valid lengths count non-pad tokens")
    func paddedArrays() {
        let p = TranslationText.pairs(Self.fra, count: 600)
        let sv = TranslationText.vocabulary(p.source, minFreq: 2)
        let x = PaddedSentences(p.source, vocabulary: sv, steps: 8)
        #expect(x.count == 601 && x.ids.count == 601 * 8)
        // "go ." → go . <eos> <pad> × 5
        #expect(Array(x.row(0)) == [sv.id("go"), sv.id("."), 3, 1, 1, 1, 1, 1] && x.lengths[0] == 3)
        let long = PaddedSentences([["a", "b", "c", "d"]], vocabulary: sv, steps: 3)
        #expect(long.lengths == [3] && !long.ids.contains(3), "a sentence cut at num-steps loses its <eos>")
    }

    @Test("lines without exactly one TAB are skipped and counted")
    func malformedLinesSkipped() {
        let p = TranslationText.pairs("a .\tb .\nno tab here\nx\ty\tz\n\tempty source\nc\td", count: 10)
        #expect(p.count == 3 && p.skipped == 2)
        #expect(p.source[1] == [""], "an empty side is kept here; the task refuses it with a message")
    }

    @Test("D2L's sentence BLEU on hand examples")
    func sentenceBLEU() {
        func b(_ p: String, _ l: String) -> Double {
            BLEU.sentence(prediction: p.split(separator: " ").map(String.init), label: l.split(separator: " ").map(String.init), k: 2)
        }
        #expect(b("va !", "va !") == 1)
        #expect(abs(b("il est riche .", "il est calme .") - 0.6580370064762462) < 1e-12)
        #expect(abs(b("je suis .", "je suis chez moi .") - 0.43173061492439624) < 1e-12)
        #expect(b("", "va !") == 0)
        #expect(b("x y", "va !") == 0)
    }

    struct Fixture: Decodable {
        struct Case: Decodable { var name: String; var hypotheses: [String]; var references: [String]; var bleu: Double }
        var sacrebleu: String
        var cases: [Case]
    }

    @Test("corpus BLEU equals sacreBLEU's (tokenize=none) to 0.01 on every fixture case")
    func corpusBLEUMatchesSacreBLEU() throws {
        let url = try #require(Bundle.module.url(forResource: "bleu", withExtension: "json", subdirectory: "Fixtures"))
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        #expect(fixture.cases.count >= 10)
        let words = { (s: String) in s.split(separator: " ").map(String.init) }
        for c in fixture.cases {
            let ours = BLEU.corpus(hypotheses: c.hypotheses.map(words), references: c.references.map(words))
            #expect(abs(ours - c.bleu) < 0.01, "\(c.name): \(ours) vs sacreBLEU \(fixture.sacrebleu) \(c.bleu)")
        }
    }
}
